"""CPU of a catalog refresh's own warehouse work in the three downstream steps that scaled with
the catalog (issue 11): search_products' and search_product_groups' search of what changed
(pipelines/search_state.py `_export_changed_inputs`, pipelines/group_search_state.py
`_export_changed_groups` and `catalog_prior`) and the analysts' publish (warehouse/publish.py),
without Meilisearch.

    .venv/bin/python -m bench.refresh_steps_cpu --warehouse <kept home>/pipeline.duckdb --work /tmp/x

`--warehouse` is the pipeline.duckdb of a home kept by ``bench.pipeline_bench --keep``. It is
copied to `--work`; the copy is brought to what a sync under the code being measured leaves
(the change markers and group members of this branch, when the code has them), published once,
then refreshed as the bench's refresh does: 1% of prices move (with their content hash, update
time and price-history row) and every offer's fetched_at. (A fetch stamps all of a marketplace's
offers with one time since branch i11pub; a home kept from before has one per page, so the copy
is first given one per marketplace: both codes then see every fetched_at move.) Each step is then timed: CPU seconds
(time.process_time: every thread, so DuckDB's included) and wall seconds. Run it with PYTHONPATH
at another checkout to measure that code, alternating the two (the A/B of bench/RESULTS.md). The
last line is ``AB {json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

OFFERS_UID = "products"
GROUPS_UID = "products_groups"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.refresh_steps_cpu", description=__doc__)
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--label", default="")
    args = parser.parse_args(argv)

    import polars as pl

    import warehouse
    from pipelines import group_search_state, search_state
    from warehouse.derived import append_price_changes

    markers = hasattr(search_state, "OFFER_MARKER_SQL")
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    source, published = args.work / "pipeline.duckdb", args.work / "warehouse.duckdb"
    shutil.copyfile(args.warehouse, source)

    def connect() -> Any:
        return warehouse.connect(source)

    with connect() as conn:
        active = [slug for (slug,) in conn.execute("SELECT slug FROM marketplaces").fetchall()]

    def record(parquet: Path) -> None:
        """What _write_state records for the exported offers (their documents' hashes are
        stand-ins: a changed input gives a changed doc_hash)."""
        moved = "x.input_hash IS DISTINCT FROM x.held_input_hash" if markers else "true"
        with connect() as conn:
            conn.execute(
                "UPDATE search_document_state AS s SET input_hash = x.input_hash, "
                "doc_hash = md5(coalesce(s.doc_hash, '') || 'x') "
                f"FROM read_parquet('{parquet}') AS x WHERE s.index_uid = '{OFFERS_UID}' "
                f"AND s.marketplace = x.marketplace AND s.external_id = x.external_id AND {moved}"
            )
            if markers:
                conn.execute(
                    "UPDATE search_document_state AS s SET row_marker = x.row_marker, "
                    f"group_id = x.group_id FROM read_parquet('{parquet}') AS x "
                    f"WHERE s.index_uid = '{OFFERS_UID}' AND s.marketplace = x.marketplace "
                    "AND s.external_id = x.external_id"
                )

    with connect() as conn:  # one fetch time per marketplace fetch, as a fetch stamps it now
        conn.execute(
            "UPDATE products AS p SET fetched_at = f.fetched_at FROM (SELECT marketplace, "
            "max(fetched_at) AS fetched_at FROM products GROUP BY marketplace) AS f "
            "WHERE p.marketplace = f.marketplace AND p.fetched_at <> f.fetched_at"
        )
    if markers:  # as this code's last sync would have left them
        prime = args.work / "prime.parquet"
        primed = search_state._export_changed_inputs(connect, OFFERS_UID, active, prime)
        record(prime)
        if len(primed) == 3:  # what it read of price_history (branch i11pub)
            with connect() as conn:
                conn.execute(
                    "INSERT OR REPLACE INTO search_history_read VALUES (?, ?, ?)",
                    [OFFERS_UID, *primed[2]],
                )
        member_sql = group_search_state.MEMBER_SQL.replace("$offers_uid", f"'{OFFERS_UID}'")
        with connect() as conn:
            conn.execute("DELETE FROM search_group_members")
            conn.execute(
                f"INSERT INTO search_group_members SELECT '{GROUPS_UID}', * FROM ({member_sql})"
            )
    warehouse.publish(source, published)
    with connect() as conn:
        conn.execute(
            "UPDATE products SET price_minor = price_minor + 1, content_hash = md5(content_hash), "
            "updated_at = now() WHERE hash(external_id) % 100 = 7"
        )
        conn.execute("UPDATE products SET fetched_at = fetched_at + INTERVAL 30 MINUTE")
        append_price_changes(conn)

    out: dict[str, Any] = {"label": args.label, "load": round(os.getloadavg()[0], 2)}

    def timed(name: str, step: Callable[[], Any]) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        result = step()
        out[name] = {
            "cpu_s": round(time.process_time() - cpu, 2),
            "wall_s": round(time.perf_counter() - wall, 2),
        }
        return result

    exported = args.work / "offers.parquet"
    timed(
        "offers_changed",
        lambda: search_state._export_changed_inputs(connect, OFFERS_UID, active, exported),
    )
    out["offers_exported"] = pl.read_parquet(exported).height
    record(exported)
    timed(
        "groups_changed",
        lambda: group_search_state._export_changed_groups(
            connect, OFFERS_UID, GROUPS_UID, args.work / "groups.parquet"
        ),
    )

    def prior() -> Any:
        with connect() as conn:
            return group_search_state.catalog_prior(conn, OFFERS_UID)

    out["prior"] = str(timed("catalog_prior", prior))
    result = timed("publish", lambda: warehouse.publish(source, published))
    out["products_refresh"] = result.refreshed["products"]
    out["load_end"] = round(os.getloadavg()[0], 2)
    print("AB", json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
