"""The pipeline benchmark's report: the summary of a full and an incremental run against the
issue's targets, the Markdown section for bench/RESULTS.md and the RESULT line."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_FILE = REPO_ROOT / "bench" / "RESULTS.md"
SECTION_HEADING = "## Catalog pipeline"

TARGET_NORMALIZE_FACTOR = 2.0
TARGET_PEAK_RSS_BYTES = 2 * 1000**3
TARGET_FULL_RUN_S = 300.0
TARGET_INCREMENTAL_SHARE = 0.10

CATALOG_STEPS = ("raw_catalog", "normalized_products")


def marketplace_rows(full: dict[str, Any], incremental: dict[str, Any]) -> list[str]:
    """Per marketplace: its offers, and its raw_catalog (fetch + raw load) and
    normalized_products step times in the full run and in the refresh."""

    def step_seconds(phase: dict[str, Any], slug: str, step: str) -> float:
        run_id = phase["partitions"].get(slug, {}).get("run_id")
        return sum(
            w["end"] - w["start"]
            for w in phase["steps"]
            if w["run_id"] == run_id and w["step"] == step
        )

    lines = [
        "| marketplace | raw records | full: `raw_catalog` | refresh: `raw_catalog` · how "
        "(records fetched) | refresh: `normalized_products` |",
        "|---|---:|---:|---:|---:|",
    ]
    total_full = total_refresh = 0.0
    for slug, part in sorted(full["partitions"].items()):
        if "run_id" not in part:
            return []
        raw = incremental["partitions"].get(slug, {}).get("raw", {})
        full_s = step_seconds(full, slug, "raw_catalog")
        refresh_s = step_seconds(incremental, slug, "raw_catalog")
        total_full += full_s
        total_refresh += refresh_s
        how = raw.get("fetch") or ("304" if raw.get("not_modified") else "every page")
        if raw.get("fetch") == "full":
            how = "every page"
        fetched = raw.get("records_fetched")
        if raw.get("pages_not_modified"):
            how += f", {int(raw['pages_not_modified']):,} of {int(raw.get('pages') or 0):,} 304"
        lines.append(
            f"| {slug} | {int(part['raw'].get('records') or part['fetched']):,} | "
            f"{full_s:.1f} s | {refresh_s:.1f} s · {how}"
            + (f" ({int(fetched):,})" if fetched is not None else "")
            + f" | {step_seconds(incremental, slug, 'normalized_products'):.1f} s |"
        )
    lines.append(
        f"| all (summed; partitions overlap) | | {total_full:.1f} s | {total_refresh:.1f} s | |"
    )
    return lines


def step_totals(result: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Per step key: summed seconds over the runs, and the peak RSS seen while it ran."""
    totals: dict[str, dict[str, float]] = {}
    for window in result["steps"]:
        entry = totals.setdefault(window["step"], {"seconds": 0.0, "peak_rss": 0})
        entry["seconds"] += window["end"] - window["start"]
        entry["peak_rss"] = max(entry["peak_rss"], window["peak_rss"])
    return totals


def gib(value: float) -> str:
    """Bytes as GiB with two decimals."""
    return f"{value / 1024**3:.2f} GiB"


def seconds(value: float) -> str:
    """Seconds, readable."""
    return f"{value:,.1f} s"


def cpu_floor(run: dict[str, Any], cores: int) -> float:
    """The CPU every process of a run used (pipeline, sandbox, Meilisearch) spread over the
    machine's cores: no scheduling of the same work can finish in less wall time."""
    total = sum(run.get(key, 0.0) for key in ("cpu_s", "sandbox_cpu_s", "meili_cpu_s"))
    return total / max(cores, 1)


@dataclass
class Outcome:
    """Every number the report shows."""

    params: dict[str, Any]
    machine: dict[str, Any]
    full: dict[str, Any]
    incremental: dict[str, Any]
    duckdb: dict[str, Any]
    exported: dict[str, dict[str, int]]
    meili_full: dict[str, Any]
    meili_incremental: dict[str, Any]
    meili_peak_rss: int
    meili_peak_anon: int
    meili_peak_file: int
    sandbox_peak_rss: int
    changed_in_sandbox: int
    document_changes: dict[str, int]
    notes: list[str]


def _summed_over_partitions(run: dict[str, Any], key: str) -> float | None:
    """`key` of every partition's normalized_products metadata, summed; None when a partition
    did not report it (code older than the figure)."""
    values = [counts.get(key) for counts in run["normalized_metadata"].values()]
    if not values or any(value is None for value in values):
        return None
    return sum(float(value) for value in values)


def summarize(outcome: Outcome) -> dict[str, Any]:
    """The headline numbers and target verdicts, derived from the raw measurements."""
    full_steps = step_totals(outcome.full)
    incremental_steps = step_totals(outcome.incremental)
    fetch_s = full_steps.get("raw_catalog", {}).get("seconds", 0.0)
    # normalized_products also evaluates the marketplace's checks in its step: its own
    # normalize_seconds (normalize + load, lock waits included, checks and Dagster's events
    # excluded) is what compares with DuckDB's read; older code had only the step's window.
    normalize_s = _summed_over_partitions(outcome.full, "normalize_seconds")
    if normalize_s is None:
        normalize_s = full_steps.get("normalized_products", {}).get("seconds", 0.0)
    duckdb_s = outcome.duckdb["seconds"]
    # Of normalize_seconds, the wait for another partition's warehouse connection (the workers
    # run two partitions at once) and the opening of the file: reported apart, not removed.
    open_s = _summed_over_partitions(outcome.full, "warehouse_open_seconds")
    # The same span's process CPU (the partitions run two at a time on two cores while the
    # baseline runs alone, so summed wall times count the overlap; CPU counts the work).
    normalize_cpu_s = _summed_over_partitions(outcome.full, "normalize_cpu_seconds")
    duckdb_cpu_s = outcome.duckdb.get("cpu_seconds")
    search = outcome.full["downstream"].get("search_products", {})
    search_s = full_steps.get("search_products", {}).get("seconds", 0.0)
    documents = int(search.get("documents") or 0)
    inc_search = outcome.incremental["downstream"].get("search_products", {})
    changed_offers = sum(
        int(counts.get("changed_offers") or 0)
        for counts in outcome.incremental["normalized_metadata"].values()
    )
    # The sampler is a thread of the measured process: a burst that holds the GIL could rise
    # and fall between two samples, so the kernel's high-water marks of every process of the
    # tree (VmHWM, see RssSampler) are floors too. Not ru_maxrss: Linux carries it across exec
    # from the parent (see rusage_peaks).
    peak_rss = max(
        outcome.full["peak_rss_sampled"],
        outcome.incremental["peak_rss_sampled"],
        outcome.full.get("peak_hwm_process", 0),
        outcome.incremental.get("peak_hwm_process", 0),
    )
    ratio = normalize_s / duckdb_s if duckdb_s else float("inf")
    share = outcome.incremental["wall_s"] / outcome.full["wall_s"]
    sent = int(inc_search.get("sent") or 0)
    deleted = int(inc_search.get("deleted") or 0)
    only_changed = (
        not inc_search.get("rebuilt")
        and sent == outcome.document_changes["changed"]
        and deleted == outcome.document_changes["removed"]
    )
    return {
        "fetch_s": fetch_s,
        "normalize_s": normalize_s,
        "duckdb_s": duckdb_s,
        "ratio": ratio,
        "open_s": open_s,
        "ratio_less_wait": (
            (normalize_s - open_s) / duckdb_s if open_s is not None and duckdb_s else None
        ),
        "normalize_cpu_s": normalize_cpu_s,
        "duckdb_cpu_s": duckdb_cpu_s,
        "cpu_ratio": (
            normalize_cpu_s / duckdb_cpu_s if normalize_cpu_s is not None and duckdb_cpu_s else None
        ),
        "search_s": search_s,
        "documents": documents,
        "docs_per_s": documents / search_s if search_s else 0.0,
        "meili_docs_per_s": (
            outcome.meili_full["documents"] / outcome.meili_full["seconds"]
            if outcome.meili_full["seconds"]
            else 0.0
        ),
        "changed_offers": changed_offers,
        "sent": sent,
        "deleted": deleted,
        "inc_rebuilt": bool(inc_search.get("rebuilt")),
        "share": share,
        "inc_catalog_s": sum(
            incremental_steps.get(step, {}).get("seconds", 0.0) for step in CATALOG_STEPS
        ),
        "peak_rss": peak_rss,
        "full_steps": full_steps,
        "incremental_steps": incremental_steps,
        "targets": {
            "normalize + load ≤ 2× DuckDB read_json": ratio <= TARGET_NORMALIZE_FACTOR,
            "peak RSS ≤ 2 GB": peak_rss <= TARGET_PEAK_RSS_BYTES,
            "full run ≤ 300 s": outcome.full["wall_s"] <= TARGET_FULL_RUN_S,
            "incremental ≤ 10% of full": share <= TARGET_INCREMENTAL_SHARE,
            "incremental sends only changed documents": only_changed,
        },
    }


def render_markdown(outcome: Outcome) -> str:
    """The "## Catalog pipeline" section of bench/RESULTS.md."""
    s = summarize(outcome)
    p, m = outcome.params, outcome.machine
    full, inc = outcome.full, outcome.incremental
    full_phase = full.get("catalog_phase_s", full["wall_s"])
    inc_phase = inc.get("catalog_phase_s", inc["wall_s"])
    changes = outcome.document_changes
    raw_bytes = sum(entry["bytes"] for entry in outcome.exported.values())
    raw_rows = sum(entry["rows"] for entry in outcome.exported.values())
    products = sum(part["normalized"] for part in full["partitions"].values())
    rejected = sum(part["rejected"] for part in full["partitions"].values())
    lines = [
        SECTION_HEADING,
        "",
        f"Run {p['date']} on commit `{p['commit'][:10]}` (a snapshot: commits made during the "
        "run do not change the code under test) with "
        f"`.venv/bin/python -m bench.pipeline_bench --offers {p['offers']}` "
        f"(seed {p['seed']}, Meilisearch `--max-indexing-memory {p['indexing_memory']}`, "
        "ONECART_ASSISTANT_EMBEDDINGS=off; partitions in parallel worker processes, one per core, "
        "as `onecart ingest` runs them; step times are summed over partitions).",
        f"Machine: {m['nproc']} cores ({m['cpu']}), {m['memory_gib']:.1f} GiB RAM, Python "
        f"{m['python']}; load average at start {m['load_at_start'][0]:.1f}. Other engineers' "
        "test suites and benchmarks were running on the same machine at the same time, so "
        "absolute times are pessimistic and noisy.",
        "",
        f"Catalog: {raw_rows:,} raw records ({raw_bytes / 1e9:.2f} GB of JSON) from "
        f"{len(outcome.exported)} marketplaces → {products:,} products, {rejected:,} rejected "
        f"(malformed on purpose), {s['documents']:,} search documents.",
        "",
        "| measurement | full run | incremental run |",
        "|---|---:|---:|",
        f"| wall time, all assets (`materialize_all`) | {seconds(full['wall_s'])} | "
        f"{seconds(inc['wall_s'])} ({s['share']:.0%} of full) |",
        f"| CPU time of the pipeline process and its workers (user + system) | "
        f"{seconds(full.get('cpu_s', 0.0))} | {seconds(inc.get('cpu_s', 0.0))} |",
        f"| CPU time of the sandbox (the marketplaces' servers, same cores) | "
        f"{seconds(full.get('sandbox_cpu_s', 0.0))} | {seconds(inc.get('sandbox_cpu_s', 0.0))} |",
        f"| CPU time of Meilisearch (indexing both indexes, answering the pipeline) | "
        f"{seconds(full.get('meili_cpu_s', 0.0))} | {seconds(inc.get('meili_cpu_s', 0.0))} |",
        f"| all of that CPU ÷ {m['nproc']} cores: the shortest wall time these cores allow | "
        f"{seconds(cpu_floor(full, m['nproc']))} | {seconds(cpu_floor(inc, m['nproc']))} |",
    ]
    steps = list(dict.fromkeys([*s["full_steps"], *s["incremental_steps"]]))
    for step in steps:
        f_entry = s["full_steps"].get(step, {"seconds": 0.0, "peak_rss": 0})
        i_entry = s["incremental_steps"].get(step, {"seconds": 0.0, "peak_rss": 0})
        lines.append(
            f"| &nbsp;&nbsp;`{step}` (time · share · peak RSS) | {seconds(f_entry['seconds'])} · "
            f"{f_entry['seconds'] / full['wall_s']:.0%} · "
            f"{gib(f_entry['peak_rss'])} | {seconds(i_entry['seconds'])} · "
            f"{i_entry['seconds'] / inc['wall_s']:.0%} · "
            f"{gib(i_entry['peak_rss'])} |"
        )
    lines += [
        f"| peak RSS of the pipeline process (+children), sampled | "
        f"{gib(full['peak_rss_sampled'])} | {gib(inc['peak_rss_sampled'])} |",
        f"| largest high-water mark of one process of the tree (VmHWM) | "
        f"{gib(full.get('peak_hwm_process', 0))} | {gib(inc.get('peak_hwm_process', 0))} |",
        f"| ru_maxrss (self; inherited across exec from the bench, not the pipeline's alone) | "
        f"{gib(full['rusage']['self'])} | {gib(inc['rusage']['self'])} |",
        f"| child processes seen by the sampler | "
        f"{', '.join(full.get('children_seen') or []) or 'none'} | "
        f"{', '.join(inc.get('children_seen') or []) or 'none'} |",
        f"| documents sent to Meilisearch | {s['documents']:,} (rebuild) | {s['sent']:,} "
        f"(+{s['deleted']:,} deleted) |",
        "",
        "| comparison | value |",
        "|---|---:|",
        f"| fetch + raw load (`raw_catalog`, all partitions) | {seconds(s['fetch_s'])} |",
        f"| normalize + load (`normalized_products`' own `normalize_seconds`, all partitions) | "
        f"{seconds(s['normalize_s'])} |",
        f"| DuckDB `read_json` of the same payloads (fresh process and file) | "
        f"{seconds(s['duckdb_s'])} (peak RSS {gib(outcome.duckdb['peak_rss_sampled'])}) |",
        f"| **normalize + load ÷ DuckDB read_json** | **{s['ratio']:.1f}×** |",
        *(
            [
                f"| &nbsp;&nbsp;of normalize + load: waiting for the warehouse (another "
                f"partition's connection) and opening it | {seconds(s['open_s'])} |",
                f"| &nbsp;&nbsp;normalize + load less that wait ÷ DuckDB read_json | "
                f"{s['ratio_less_wait']:.1f}× |",
            ]
            if s["open_s"] is not None
            else []
        ),
        *(
            [
                f"| normalize + load, process CPU (all partitions) ÷ `read_json`'s process CPU | "
                f"{seconds(s['normalize_cpu_s'])} ÷ {seconds(s['duckdb_cpu_s'])} = "
                f"{s['cpu_ratio']:.1f}× |"
            ]
            if s["cpu_ratio"] is not None
            else []
        ),
        f"| search_products step (build documents + full rebuild + swap) | "
        f"{seconds(s['search_s'])} → {s['docs_per_s']:,.0f} docs/s |",
        f"| Meilisearch's own indexing time (first task start → last task end) | "
        f"{seconds(outcome.meili_full['seconds'])} for {outcome.meili_full['documents']:,} "
        f"docs in {outcome.meili_full['tasks']:,} tasks, "
        f"{outcome.meili_full.get('batches', 0):,} batches → {s['meili_docs_per_s']:,.0f} docs/s |",
        f"| Meilisearch peak RSS (VmHWM) · peak anonymous · peak file-backed (LMDB maps) | "
        f"{gib(outcome.meili_peak_rss)} · {gib(outcome.meili_peak_anon)} · "
        f"{gib(outcome.meili_peak_file)} |",
        f"| offers re-priced by the sandbox (epoch 0 → 1) | {outcome.changed_in_sandbox:,} |",
        f"| offers the pipeline saw change (`changed_offers`) | {s['changed_offers']:,} |",
        f"| documents whose `doc_hash` changed in the index | {changes['changed']:,} "
        f"({changes['offer_content']:,} own content, {changes['group_summary']:,} only the "
        f"group's summary, {changes['other']:,} other, {changes['new']:,} new) |",
        f"| documents removed from the index | {changes['removed']:,} |",
        f"| documents sent by the incremental run | {s['sent']:,} (+{s['deleted']:,} deleted) |",
        f"| incremental run: `raw_catalog` + `normalized_products` step times, summed over the "
        f"partitions (they overlap in the workers) | {seconds(s['inc_catalog_s'])} |",
        f"| partition phase, wall (fetch every catalog, 304 where conditional; store and "
        f"normalize the new payloads): full · incremental | {seconds(full_phase)} · "
        f"{seconds(inc_phase)} ({inc_phase / full['wall_s']:.1%} of the full run) |",
        f"| downstream run, wall: full · incremental | {seconds(full['wall_s'] - full_phase)} · "
        f"{seconds(inc['wall_s'] - inc_phase)} "
        f"({(inc['wall_s'] - inc_phase) / full['wall_s']:.1%} of the full run) |",
        "",
    ]
    per_marketplace = marketplace_rows(full, inc)
    if per_marketplace:
        lines += [*per_marketplace, ""]
    lines += [
        "| target | met? |",
        "|---|---|",
    ]
    for name, met in s["targets"].items():
        lines.append(f"| {name} | {'yes' if met else '**no**'} |")
    if outcome.notes:
        lines += ["", *[f"- {note}" for note in outcome.notes]]
    return "\n".join(lines) + "\n"


def print_table(outcome: Outcome) -> None:
    """The same numbers on the console."""
    print()
    print(render_markdown(outcome))


def replace_section(text: str, section: str) -> str:
    """`text` with its "## Catalog pipeline" section replaced by `section` (appended if absent);
    other engineers' sections are left exactly as they are."""
    # The heading may carry a suffix ("## Catalog pipeline — <date>"); the section runs to the
    # next "## " heading.
    pattern = re.compile(rf"^{re.escape(SECTION_HEADING)}\b[^\n]*\n.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(text):
        return pattern.sub(lambda _match: section + "\n", text, count=1).rstrip("\n") + "\n"
    if not text.strip():
        return "# Benchmark results\n\n" + section
    return text.rstrip("\n") + "\n\n" + section


def write_results(section: str) -> None:
    """Replace (or append) this benchmark's section of bench/RESULTS.md."""
    text = RESULTS_FILE.read_text(encoding="utf-8") if RESULTS_FILE.exists() else ""
    RESULTS_FILE.write_text(replace_section(text, section), encoding="utf-8")


def result_line(outcome: Outcome) -> str:
    """The benchmark's one machine-readable line."""
    summary = summarize(outcome)
    return (
        f"RESULT offers={outcome.params.get('offers')} full_s={outcome.full['wall_s']:.1f} "
        f"normalize_load_vs_duckdb={summary['ratio']:.2f} "
        f"incremental_share={summary['share']:.3f} "
        f"peak_rss_gb={summary['peak_rss'] / 1000**3:.2f} "
        f"docs_sent={summary['sent']} docs_changed={outcome.document_changes['changed']}"
        + (
            f" normalize_load_less_wait_vs_duckdb={summary['ratio_less_wait']:.2f}"
            if summary["ratio_less_wait"] is not None
            else ""
        )
        + (
            f" normalize_load_cpu_vs_duckdb={summary['cpu_ratio']:.2f}"
            if summary["cpu_ratio"] is not None
            else ""
        )
        + (
            f" meili_cpu_s={outcome.full['meili_cpu_s']:.1f}"
            f" full_cpu_floor_s={cpu_floor(outcome.full, outcome.machine['nproc']):.1f}"
            if "meili_cpu_s" in outcome.full
            else ""
        )
    )
