"""The AI shopping assistant: plain-language requests become grounded product suggestions.

- `intent` turns a request into constraints (budget, category, brand, marketplaces, rating,
  availability, sort, quantity, sizes) and the free text that is left, deterministically.
- `vocabulary` holds the shopper words for categories and what the index calls things.
- `embeddings` loads the local sentence-embedding model once per process (when installed).
- `retrieval` asks Meilisearch (hybrid search when vectors exist, keyword search otherwise).
- `answer` groups the hits per product, picks the cheapest suitable offer and explains the match.
- `llm` may phrase the answer through an OpenAI-compatible endpoint, never adding facts.
- `spelling` reads misspelt category, constraint and descriptor words as the words meant.

Nothing here imports Flask, the sandbox or the pipeline (tests/assistant/test_import_graph.py
checks): the storefront's assistant blueprint, the benchmark and the evaluation (both under
bench/) call :func:`assistant.service.answer_prompt`.
"""
