-- Offer embeddings for the assistant's semantic search, cached by the text they were computed
-- from: an offer whose title, brand, category and description start are unchanged is never
-- embedded again, and two offers with the same text share one row. Applied idempotently.
CREATE TABLE IF NOT EXISTS offer_embeddings (
    model_id VARCHAR NOT NULL,
    text_hash VARCHAR NOT NULL,
    embedding FLOAT[384] NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (model_id, text_hash)
);
