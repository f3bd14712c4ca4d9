"""OneCart's sandbox: demo marketplaces on one local HTTP server, each speaking a real API format.

Run it::

    python -m sandbox serve [--host H] [--port P] [--offers N] [--seed S]
                            [--price-epoch E] [--knob slug.name=value ...] [--public-url URL]

Defaults come from onecart.settings (ONECART_SANDBOX_HOST/PORT/OFFERS/SEED: 127.0.0.1:8800,
12,000 offers, seed 42). ``--offers`` is the total across the six core marketplaces; offers are computed
lazily by index (see :mod:`sandbox.world`), so ``--offers 1000000`` starts instantly and each
page costs only its own records. The same seed and offers give byte-identical catalogs across
restarts (with the same host and port, which appear in image URLs).

Marketplaces (the contract is docs/sandbox-and-adapters.md):

========== ============================ ==========================================
slug       format (module)              currency
========== ============================ ==========================================
shopwave   Shopify (sandbox.shopify)    USD
kiondo     WooCommerce (woocommerce)    KES
dummymart  DummyJSON (dummyjson)        USD
fakestore  Fake Store API (fakestore)   EUR
naijamall  Google feed (google_feed)    NGN
bazaar     custom JSON (bazaar)         EUR (a few GBP)
amazon     Creators API (amazon)        USD
sokoni     CSV affiliate feed           KES (a quarter NGN)
           (affiliate_feed)
========== ============================ ==========================================

Amazon and Sokoni are added on top of the six without changing their catalogs: each lists a
third of one marketplace's share of ``--offers``, half of them products the six share.

Control API: ``GET /_sandbox/health``, ``GET /_sandbox/knobs``, ``POST /_sandbox/knobs/<slug>``
(JSON of knob values; slug ``all`` sets every marketplace), ``POST /_sandbox/reset`` (knobs back
to the server's defaults and every store's stock back to the world's, orders kept), ``GET /_sandbox/images/<product>.svg``.

Knobs per marketplace (sandbox.knobs): latency_ms, error_rate, burst_429, malformed_rate (0.02),
down, fail_next_orders, order_step_seconds (30), cancel_rate (0.05), delay_rate (0.1), price_drift, the sandbox's
own price_epoch, unlisted_products (ShopWave and Kiondo: product ids off the catalog), and the
order faults: order_reply_delay_ms, fail_after_next_orders,
refuse_next_orders, order_price_change_pct, delisted_products, drop_unknown_lines,
max_line_quantity, cancel_next_orders, cancel_reply_delay_ms, fail_after_next_cancels,
search_lag_ms, failing_order_reads (docs/sandbox-and-adapters.md). ``GET /_sandbox/orders/<slug>`` lists the orders a marketplace
holds; ``POST /_sandbox/orders/<slug>/<number>/cancel`` has the marketplace cancel one, and
``POST /_sandbox/orders/<slug>/<number>/advance`` moves one on by ``{"steps": N}`` at once.

Price epochs, for benchmarking incremental pipeline runs: ``--price-epoch N`` (or the
``price_epoch`` knob, e.g. ``POST /_sandbox/knobs/all {"price_epoch": 1}``) changes the catalog
price of about 1% of the offers per epoch, deterministically; epoch 0 is the base catalog.
"""
