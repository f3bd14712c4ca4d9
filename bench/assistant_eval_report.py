"""The assistant evaluation's scores: each request's result in each mode, the per-mode means,
and the Markdown section (with its RESULT line) bench/RESULTS.md takes.

Metrics, per mode, averaged over requests that have relevant products:
- precision@5: relevant among the first five suggestions (or fewer, when fewer are shown);
- recall@10: relevant groups among the first ten, divided by min(10, relevant groups);
- constraint satisfaction: share of all suggestions that meet every parsed constraint, checked
  again on the suggested offer (and, separately, every labelled constraint).
Requests labelled `expect_none` score 1 when the answer is empty and offers a relaxation.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from assistant.retrieval import MODE_HYBRID, MODE_KEYWORD
from bench.assistant_eval_labels import EvalRequest

PRECISION_AT: Final = 5
RECALL_AT: Final = 10


@dataclass(slots=True)
class RequestResult:
    """One request in one mode."""

    id: str
    kind: str
    mode: str
    path: str
    relevant: int
    suggested: list[str]
    precision: float | None
    recall: float | None
    satisfied: int
    label_satisfied: int
    ms: float
    empty_ok: bool | None = None


def score_request(
    request: EvalRequest,
    relevant: set[str],
    suggestions: Sequence[str],
) -> tuple[float | None, float | None]:
    """precision@5 and recall@10 (None when the request has nothing relevant)."""
    if not relevant:
        return None, None
    top_p = list(suggestions[:PRECISION_AT])
    precision = sum(1 for g in top_p if g in relevant) / len(top_p) if top_p else 0.0
    top_r = set(suggestions[:RECALL_AT])
    recall = len(top_r & relevant) / min(RECALL_AT, len(relevant))
    return precision, recall


@dataclass(slots=True)
class EvalReport:
    """Per-mode aggregates and every request's result."""

    results: list[RequestResult]
    catalog: Mapping[str, Any]
    index_uid: str
    semantic_ratio: float
    model: str
    unlabelled: list[str]

    def summary(self) -> dict[str, dict[str, Any]]:
        """Mean precision@5, recall@10, constraint satisfaction and latency per mode."""
        out: dict[str, dict[str, Any]] = {}
        for mode in (MODE_KEYWORD, MODE_HYBRID):
            rows = [r for r in self.results if r.mode == mode]
            scored = [r for r in rows if r.precision is not None]
            suggestions = sum(len(r.suggested) for r in rows)
            negatives = [r for r in rows if r.empty_ok is not None]
            out[mode] = {
                "requests": len(rows),
                "scored": len(scored),
                "precision_at_5": statistics.fmean(r.precision for r in scored) if scored else 0.0,
                "recall_at_10": statistics.fmean(r.recall for r in scored) if scored else 0.0,
                "suggestions": suggestions,
                "constraint_satisfaction": (
                    sum(r.satisfied for r in rows) / suggestions if suggestions else 1.0
                ),
                "label_constraint_satisfaction": (
                    sum(r.label_satisfied for r in rows) / suggestions if suggestions else 1.0
                ),
                "nothing_fits_correct": f"{sum(1 for r in negatives if r.empty_ok)}/{len(negatives)}",
                "answered_by": {
                    path: sum(1 for r in rows if r.path == path)
                    for path in sorted({r.path for r in rows})
                },
                "p50_ms": statistics.median(r.ms for r in rows) if rows else 0.0,
            }
        return out

    def by_kind(self) -> dict[str, dict[str, float]]:
        """recall@10 per request kind and mode (where the modes differ)."""
        table: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for r in self.results:
            if r.recall is not None:
                table[r.kind][r.mode].append(r.recall)
        return {
            kind: {mode: statistics.fmean(values) for mode, values in modes.items()}
            for kind, modes in sorted(table.items())
        }


def format_report(report: EvalReport) -> str:
    """A Markdown section with the summary table and recall per request kind."""
    summary = report.summary()
    lines = [
        f"### Assistant evaluation ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Catalog: sandbox seed {report.catalog['seed']}, {report.catalog['offers']} offers; "
        f"index `{report.index_uid}`; models: {report.model}; semanticRatio "
        f"{report.semantic_ratio}; {summary[MODE_KEYWORD]['requests']} requests "
        f"({summary[MODE_KEYWORD]['scored']} with relevant products).",
        "",
        "| mode | precision@5 | recall@10 | constraint satisfaction (parsed) | "
        "(labelled) | nothing-fits answered | answered by | p50 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode in (MODE_KEYWORD, MODE_HYBRID):
        row = summary[mode]
        lines.append(
            f"| {mode} | {row['precision_at_5']:.3f} | {row['recall_at_10']:.3f} | "
            f"{row['constraint_satisfaction']:.1%} ({row['suggestions']} suggestions) | "
            f"{row['label_constraint_satisfaction']:.1%} | {row['nothing_fits_correct']} | "
            f"{', '.join(f'{k} {v}' for k, v in row['answered_by'].items())} | "
            f"{row['p50_ms']:.1f} |"
        )
    gain = summary[MODE_HYBRID]["recall_at_10"] - summary[MODE_KEYWORD]["recall_at_10"]
    lines += ["", f"Hybrid − keyword recall@10: {gain * 100:+.1f} points.", ""]
    lines += ["| request kind | keyword recall@10 | hybrid recall@10 |", "|---|---|---|"]
    for kind, modes in report.by_kind().items():
        lines.append(
            f"| {kind} | {modes.get(MODE_KEYWORD, 0):.3f} | {modes.get(MODE_HYBRID, 0):.3f} |"
        )
    if report.unlabelled:
        lines += [
            "",
            "Requests with no relevant product in this catalog: " + ", ".join(report.unlabelled),
        ]
    hybrid, keyword = summary[MODE_HYBRID], summary[MODE_KEYWORD]
    lines += [
        "",
        f"RESULT hybrid_recall_at_10={hybrid['recall_at_10']:.3f} "
        f"keyword_recall_at_10={keyword['recall_at_10']:.3f} "
        f"hybrid_constraint_satisfaction={hybrid['constraint_satisfaction'] * 100:.1f} "
        f"keyword_constraint_satisfaction={keyword['constraint_satisfaction'] * 100:.1f} "
        f"requests={keyword['requests']}",
    ]
    return "\n".join(lines) + "\n"
