"""Repeatable evaluation of the assistant: keyword-only against hybrid retrieval.

    python -m bench.assistant_eval [--index NAME] [--json PATH] [--append-results]

Works on the warehouse of a default sandbox catalog (`onecart ingest` with seed 42 and 12,000
offers, the defaults). It embeds any offer text not embedded yet (the offer_embeddings cache),
builds the documents exactly as the pipeline's search_products asset does into an evaluation
index with vectors (incremental on later runs), and asks every request of assistant_eval_set.json twice.

The judge (labels, relevant groups) is bench/assistant_eval_labels.py, the index
bench/assistant_eval_index.py, the scores (precision@5, recall@10, constraint satisfaction) and
the RESULTS.md section bench/assistant_eval_report.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

import meilisearch

from assistant.config import AssistantSettings, get_assistant_settings
from assistant.constraints import unmet_constraints
from assistant.embeddings import load_offer_embedder
from assistant.retrieval import MODE_HYBRID, MODE_KEYWORD
from assistant.service import answer_prompt, semantic_embedder
from bench.assistant_eval_index import prepare_index, read_index_offers, read_warehouse_fx
from bench.assistant_eval_labels import (
    EVAL_SET_PATH,
    EvalRequest,
    build_catalog_map,
    load_eval_set,
    offer_meets_label,
    relevant_groups,
    world_products,
)
from bench.assistant_eval_report import (
    RECALL_AT,
    EvalReport,
    RequestResult,
    format_report,
    score_request,
)
from commerce.fx import FxTable
from onecart.settings import get_settings

RESULTS_PATH: Final = Path(__file__).resolve().parent / "RESULTS.md"
EVAL_INDEX_SUFFIX: Final = "_assistant_eval"


def run_evaluation(
    client: meilisearch.Client,
    index_uid: str,
    fx: FxTable,
    requests: Sequence[EvalRequest],
    catalog_spec: Mapping[str, Any],
    assistant_settings: AssistantSettings,
    *,
    progress: Any = print,
) -> EvalReport:
    """Ask every request in both modes and score the answers."""
    started = time.perf_counter()
    products = world_products(int(catalog_spec["seed"]), int(catalog_spec["offers"]))
    documents = read_index_offers(client, index_uid)
    catalog = build_catalog_map(documents, products)
    documents_by_id = {doc["id"]: doc for doc in documents}
    progress(
        f"labels: {len(products)} world products, {len(catalog.groups_by_product)} found in the "
        f"index ({time.perf_counter() - started:.1f}s)"
    )
    results: list[RequestResult] = []
    unlabelled: list[str] = []
    for request in requests:
        relevant = relevant_groups(request, products, catalog, fx)
        if not relevant and not request.expect_none:
            unlabelled.append(request.id)
        for mode in (MODE_KEYWORD, MODE_HYBRID):
            t0 = time.perf_counter()
            answer = answer_prompt(
                request.prompt,
                client=client,
                index_uid=index_uid,
                fx=fx,
                display_currency=request.display_currency,
                settings=assistant_settings,
                mode=mode,
                limit=RECALL_AT,
                use_llm=False,
            )
            ms = (time.perf_counter() - t0) * 1000
            suggested = [s.group_id for s in answer.suggestions]
            satisfied = label_ok = 0
            for s in answer.suggestions:
                offer = documents_by_id.get(s.offer_id, {})
                # Brand, category and size are facts of the product: any offer of the group
                # may carry them (a Fake Store listing names no brand).
                group_docs = catalog.offers_by_group.get(s.group_id) or [offer]
                if offer and any(
                    not unmet_constraints(answer.intent, offer, doc, fx) for doc in group_docs
                ):
                    satisfied += 1
                if offer and offer_meets_label(offer, request.constraints, fx):
                    label_ok += 1
            precision, recall = score_request(request, relevant, suggested)
            empty_ok = None
            if request.expect_none:
                empty_ok = not answer.suggestions and bool(answer.relaxations)
            results.append(
                RequestResult(
                    id=request.id,
                    kind=request.kind,
                    mode=mode,
                    path=answer.path,
                    relevant=len(relevant),
                    suggested=suggested,
                    precision=precision,
                    recall=recall,
                    satisfied=satisfied,
                    label_satisfied=label_ok,
                    ms=ms,
                    empty_ok=empty_ok,
                )
            )
    offers_embedder = load_offer_embedder(assistant_settings)
    requests_embedder, _reason = semantic_embedder(assistant_settings)
    model = "none (keyword only)"
    if offers_embedder is not None and requests_embedder is not None:
        model = f"offers {offers_embedder.model_id}, requests {requests_embedder.model_id}"
    return EvalReport(
        results=results,
        catalog=catalog_spec,
        index_uid=index_uid,
        semantic_ratio=assistant_settings.semantic_ratio,
        model=model,
        unlabelled=unlabelled,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.assistant_eval", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--index", help="evaluation index uid (default: <MEILI_INDEX>_assistant_eval)"
    )
    parser.add_argument("--eval-set", type=Path, default=EVAL_SET_PATH)
    parser.add_argument("--json", type=Path, help="also write every request's result here")
    parser.add_argument("--append-results", action="store_true", help=f"append to {RESULTS_PATH}")
    parser.add_argument("--skip-build", action="store_true", help="use the index as it is")
    args = parser.parse_args(argv)

    settings = get_settings()
    assistant_settings = get_assistant_settings()
    catalog_spec, requests = load_eval_set(args.eval_set)
    index_uid = args.index or f"{settings.meili_index}{EVAL_INDEX_SUFFIX}"
    client = meilisearch.Client(settings.meili_url, settings.meili_master_key, timeout=120)
    log = lambda message: print(message, file=sys.stderr)  # noqa: E731
    if args.skip_build:
        fx = read_warehouse_fx(settings)
    else:
        fx = prepare_index(settings, assistant_settings, client, index_uid, progress=log)
    report = run_evaluation(
        client, index_uid, fx, requests, catalog_spec, assistant_settings, progress=log
    )
    text = format_report(report)
    print(text)
    if args.json:
        args.json.write_text(
            json.dumps(
                {"summary": report.summary(), "results": [asdict(r) for r in report.results]},
                indent=2,
                default=str,
            ),
            encoding="utf-8",
        )
    if args.append_results:
        RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
        with RESULTS_PATH.open("a", encoding="utf-8") as handle:
            handle.write("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
