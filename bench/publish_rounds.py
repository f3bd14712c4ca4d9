"""The analysts' publish (warehouse/publish.py) over several refreshes in a row, alone: wall and
CPU of each publish, which file it started from and the published file's size (issue 11).

    .venv/bin/python -m bench.publish_rounds --warehouse <kept home>/pipeline.duckdb --work /tmp/x

`--warehouse` is the pipeline.duckdb of a home kept by ``bench.pipeline_bench --keep``; it is
copied to `--work` and published once from scratch. Then each round does what a refresh does to
the tables the publish reads (a different ~1% of prices move, with their content hash, update
time and price-history row; every offer's fetched_at moves) and publishes; the first rounds show
the first refreshes after a full build, the later ones the steady state of a refresh every 30
minutes. Run it with PYTHONPATH at another checkout to measure that code, alternating the two
(the A/B of bench/RESULTS.md). The last line is ``AB {json}`` (per round and the median of the
rounds after the first).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.publish_rounds", description=__doc__)
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--label", default="")
    args = parser.parse_args(argv)

    import warehouse
    from warehouse.derived import append_price_changes

    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    source, published = args.work / "pipeline.duckdb", args.work / "warehouse.duckdb"
    shutil.copyfile(args.warehouse, source)
    out: dict[str, object] = {"label": args.label, "load": round(os.getloadavg()[0], 2)}

    def timed_publish() -> dict[str, object]:
        wall, cpu = time.perf_counter(), time.process_time()
        result = warehouse.publish(source, published)
        return {
            "wall_s": round(time.perf_counter() - wall, 2),
            "cpu_s": round(time.process_time() - cpu, 2),
            "started_from": getattr(result, "started_from", "copy"),
            "products": result.refreshed["products"],
            "file_mb": round(published.stat().st_size / 2**20, 1),
        }

    out["full"] = timed_publish()
    rounds = []
    for number in range(args.rounds):
        with warehouse.connect(source) as conn:
            conn.execute(
                "UPDATE products SET price_minor = price_minor + 1, "
                "content_hash = md5(content_hash), updated_at = now() "
                "WHERE hash(external_id || ?) % 100 = 7",
                [str(number)],
            )
            conn.execute("UPDATE products SET fetched_at = fetched_at + INTERVAL 30 MINUTE")
            append_price_changes(conn)
        rounds.append(timed_publish())
    out["rounds"] = rounds
    later = rounds[1:] or rounds
    out["median_wall_s"] = statistics.median(r["wall_s"] for r in later)  # type: ignore[misc]
    out["median_cpu_s"] = statistics.median(r["cpu_s"] for r in later)  # type: ignore[misc]
    out["load_end"] = round(os.getloadavg()[0], 2)
    print("AB", json.dumps(out))
    shutil.rmtree(args.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
