"""The Meilisearch `products` index: its settings, its documents and how they reach the server.

`settings` declares the index configuration, `documents` turns warehouse rows into search
documents, `indexing` sends them (incrementally, or as a zero-downtime rebuild). The storefront's
query layer lives beside them in `queries`.
"""
