"""Meilisearch: the offers index (`products`) and the product index (`products_groups`).

`settings` declares both indexes' configuration, `documents` turns warehouse rows into offer
documents (the typed `OfferDocument` the site and the assistant share), `groups` turns those into
product documents, `indexing` sends them (incrementally, or as a zero-downtime rebuild). The
site's questions are split by job: `params` (listing URLs), `filters` (Meilisearch expressions),
`client` (the HTTP client), `cache` (the optional result cache), `listing_plan` (the queries of
one listing), `price_order` (the price order over several chosen marketplaces), `listings`
(running a listing, and a group's offers) and `merchandising` (the home page's featured rows).
"""
