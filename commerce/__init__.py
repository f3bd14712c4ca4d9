"""OneCart's business services: plain Python used by the Flask site, the RQ jobs and the Dagster
storefront sync alike. Nothing here imports Flask or RQ."""
