"""OneCart's Dagster pipeline: marketplace catalogs into the DuckDB warehouse, the search index
and the storefront DB. Definitions in pipelines.definitions; `onecart ingest` calls
pipelines.run.materialize_all."""
