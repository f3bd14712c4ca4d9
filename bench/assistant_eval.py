"""Repeatable evaluation of the assistant: keyword-only against hybrid retrieval.

    python -m bench.assistant_eval [--index NAME] [--json PATH] [--append-results]

Works on the warehouse of a default sandbox catalog (`onecart ingest` with seed 42 and 12,000
offers, the defaults). It embeds any offer text not embedded yet (the offer_embeddings cache),
builds the documents exactly as the pipeline's search_products asset does into an evaluation
index with vectors (incremental on later runs), and asks every request of assistant_eval_set.json twice.

Labels are written against the sandbox's world (sandbox.world): each request names what a
relevant product is (category, brand, product line, words of its name or features, size), which
selects world products; a world product is found in the warehouse by its stable keys (GTIN, or
brand + model number, also inside titles) and so mapped to the product groups the index knows.
Hard constraints written with the label (budget, marketplaces, rating) then keep only groups
with an offer that meets them, checked on warehouse prices with the run's FX rates.

Metrics, per mode, averaged over requests that have relevant products:
- precision@5: relevant among the first five suggestions (or fewer, when fewer are shown);
- recall@10: relevant groups among the first ten, divided by min(10, relevant groups);
- constraint satisfaction: share of all suggestions that meet every parsed constraint, checked
  again on the suggested offer (and, separately, every labelled constraint).
Requests labelled `expect_none` score 1 when the answer is empty and offers a relaxation.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import meilisearch

from assistant.budget import Budget
from assistant.config import AssistantSettings, get_assistant_settings
from assistant.constraints import offer_meets_budget, unmet_constraints
from assistant.embedding_store import read_document_vectors, refresh_offer_embeddings
from assistant.embeddings import load_offer_embedder, model_status
from assistant.retrieval import MODE_HYBRID, MODE_KEYWORD, forget_index_profiles
from assistant.service import answer_prompt, semantic_embedder
from assistant.vocabulary import fold
from commerce.fx import FxTable
from onecart.money import to_minor_units
from onecart.settings import Settings, get_settings

EVAL_SET_PATH: Final = Path(__file__).resolve().parent / "assistant_eval_set.json"
RESULTS_PATH: Final = Path(__file__).resolve().parent / "RESULTS.md"
EVAL_INDEX_SUFFIX: Final = "_assistant_eval"
PRECISION_AT: Final = 5
RECALL_AT: Final = 10


# --- Labels ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EvalRequest:
    """One labelled request of assistant_eval_set.json."""

    id: str
    prompt: str
    kind: str
    relevant: Mapping[str, Any]
    constraints: Mapping[str, Any]
    display_currency: str = "USD"
    expect_none: bool = False


def load_eval_set(path: Path = EVAL_SET_PATH) -> tuple[dict[str, Any], list[EvalRequest]]:
    """The catalog the labels were written for, and the requests."""
    data = json.loads(path.read_text(encoding="utf-8"))
    requests = [
        EvalRequest(
            id=item["id"],
            prompt=item["prompt"],
            kind=item.get("kind", "other"),
            relevant=item.get("relevant", {}),
            constraints=item.get("constraints", {}),
            display_currency=item.get("display_currency", "USD"),
            expect_none=bool(item.get("expect_none", False)),
        )
        for item in data["requests"]
    ]
    ids = [r.id for r in requests]
    if len(ids) != len(set(ids)):
        raise ValueError(f"{path.name} has duplicate request ids")
    return data["catalog"], requests


def world_products(seed: int, offers: int) -> dict[str, Any]:
    """Every world product the sandbox lists at this size, by product key: on the six
    marketplaces and the affiliate ones (Amazon, Sokoni), whose own products are in the
    index too and are relevant by the same rules."""
    from sandbox.marketplaces import SERVED_MARKETPLACES
    from sandbox.world import World

    world = World(seed, offers)
    products: dict[str, Any] = {}
    for market in SERVED_MARKETPLACES:
        for index in range(world.offer_count(market.slug)):
            key = world.product_key(market.slug, index)
            if key not in products:
                products[key] = world.product(key)
    return products


def product_text(product: Any) -> str:
    """Everything a label's `text_any` may match: name, descriptor, size, colour, features."""
    return fold(
        " ".join(
            [
                product.display_name,
                product.line,
                product.descriptor,
                product.spec,
                product.colour,
                product.category.name,
                *product.features,
            ]
        )
    )


def matches_rule(product: Any, rule: Mapping[str, Any]) -> bool:
    """Does a world product satisfy a label's relevance rule (every given field must hold)?"""
    if "categories" in rule and product.category.slug not in rule["categories"]:
        return False
    if "brands" in rule and product.brand not in rule["brands"]:
        return False
    if "exclude_brands" in rule and product.brand in rule["exclude_brands"]:
        return False
    if "lines" in rule and not any(fold(line) in fold(product.line) for line in rule["lines"]):
        return False
    if "spec" in rule and product.spec != rule["spec"]:
        return False
    if "gift" in rule and product.gift != rule["gift"]:
        return False
    text = product_text(product)
    if "text_any" in rule and not any(fold(word) in text for word in rule["text_any"]):
        return False
    return not ("text_none" in rule and any(fold(word) in text for word in rule["text_none"]))


# --- Mapping world products to index groups ----------------------------------------------------


@dataclass(slots=True)
class CatalogMap:
    """Warehouse offers by product key and group, for judging suggestions."""

    groups_by_product: dict[str, set[str]] = field(default_factory=dict)
    offers_by_group: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    product_of_group: dict[str, str] = field(default_factory=dict)


def build_catalog_map(
    offers: Iterable[Mapping[str, Any]], products: Mapping[str, Any]
) -> CatalogMap:
    """Find each warehouse offer's world product by GTIN, else brand + model (in the model
    field or in the title), and record its product group."""
    from warehouse.matching import model_candidates_in_title, normalize_model

    by_gtin = {p.gtin: key for key, p in products.items()}
    by_model: dict[str, str] = {}
    for key, p in products.items():
        model = normalize_model(p.model)
        if model:
            by_model[model] = key
    result = CatalogMap()
    for offer in offers:
        key = by_gtin.get(offer.get("gtin") or "")
        if key is None:
            model = normalize_model(offer.get("model"))
            key = by_model.get(model) if model else None
        if key is None:
            for candidate in sorted(model_candidates_in_title(str(offer.get("title") or ""))):
                if candidate in by_model:
                    key = by_model[candidate]
                    break
        group_id = offer.get("group_id")
        if not group_id:
            continue
        result.offers_by_group.setdefault(group_id, []).append(dict(offer))
        if key is not None:
            result.groups_by_product.setdefault(key, set()).add(group_id)
            result.product_of_group.setdefault(group_id, key)
    return result


def label_budget(constraints: Mapping[str, Any]) -> Budget | None:
    """A label's budget, exactly, in minor units."""
    spec = constraints.get("budget")
    if not spec:
        return None
    currency = spec["currency"]
    low = spec.get("min")
    high = spec.get("max")
    return Budget(
        currency,
        to_minor_units(Decimal(str(low)), currency) if low is not None else None,
        to_minor_units(Decimal(str(high)), currency) if high is not None else None,
    )


def offer_meets_label(
    offer: Mapping[str, Any], constraints: Mapping[str, Any], fx: FxTable
) -> bool:
    """Does one offer meet the labelled (hand-written) offer-level constraints?"""
    budget = label_budget(constraints)
    if budget is not None and not offer_meets_budget(offer, budget, fx):
        return False
    if (
        constraints.get("marketplaces")
        and offer.get("marketplace") not in constraints["marketplaces"]
    ):
        return False
    if offer.get("marketplace") in constraints.get("exclude_marketplaces", []):
        return False
    if constraints.get("available", True) and not offer.get("available"):
        return False
    minimum = constraints.get("min_rating")
    if minimum is not None:
        rating = offer.get("rating")
        if rating is None or Decimal(str(rating)) < Decimal(str(minimum)):
            return False
    return True


def relevant_groups(
    request: EvalRequest, products: Mapping[str, Any], catalog: CatalogMap, fx: FxTable
) -> set[str]:
    """The groups a perfect answer would draw from."""
    if request.expect_none:
        return set()
    groups: set[str] = set()
    for key, product in products.items():
        if not matches_rule(product, request.relevant):
            continue
        for group_id in catalog.groups_by_product.get(key, ()):
            offers = catalog.offers_by_group.get(group_id, [])
            if any(offer_meets_label(o, request.constraints, fx) for o in offers):
                groups.add(group_id)
    return groups


# --- Running -----------------------------------------------------------------------------------


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


def prepare_index(
    settings: Settings,
    assistant_settings: AssistantSettings,
    client: meilisearch.Client,
    index_uid: str,
    *,
    progress: Any = print,
) -> FxTable:
    """Embed what is missing, then build the evaluation index from the warehouse exactly as the
    pipeline's search_products asset builds its documents, with vectors. Returns the FX table."""
    import warehouse
    from pipelines.search_sync import build_search_documents
    from search_index.indexing import sync_index
    from warehouse.derived import read_latest_rates, read_offer_frame

    db_path = settings.pipeline_db_path
    # The offers' model exactly as the pipeline loads it (ONECART_ASSISTANT_EMBED_BACKEND and
    # the rest), and only that model's vectors go into the index, whatever else is cached.
    embedder = load_offer_embedder(assistant_settings)
    if embedder is not None:
        refresh = refresh_offer_embeddings(
            lambda: warehouse.connect(db_path), embedder, progress=progress
        )
        progress(
            f"embeddings: {refresh.embedded} new, {refresh.reused} cached"
            + (f" ({refresh.offers_per_second:.0f} offers/s)" if refresh.embedded else "")
        )
    else:
        progress(f"embeddings: {model_status(assistant_settings.model_package).reason}")
    with warehouse.connect(db_path, read_only=True) as conn:
        offers = read_offer_frame(conn)
        rates = read_latest_rates(conn)
        marketplaces = {
            slug: {"slug": slug, "name": name, "logo": logo}
            for slug, name, logo in conn.execute(
                "SELECT slug, name, logo FROM marketplaces"
            ).fetchall()
        }
        vectors = read_document_vectors(conn, embedder.model_id) if embedder is not None else None
    if rates is None:
        raise SystemExit("the warehouse has no FX rates: run `onecart ingest` first")
    built = build_search_documents(offers, marketplaces=marketplaces, rates=rates.rates)
    result = sync_index(client, index_uid, built.documents, vectors=vectors, progress=progress)
    progress(
        f"{index_uid}: {len(built.documents)} documents "
        f"({'rebuilt' if result.rebuilt else 'incremental'}, sent {result.sent}), "
        f"{len(vectors or {})} with vectors"
    )
    forget_index_profiles()
    return FxTable(
        per_usd={c: r for c, r in rates.rates.items() if c != "USD"},
        as_of=rates.as_of,
        sources=("warehouse",),
    )


def read_index_offers(client: meilisearch.Client, index_uid: str) -> list[dict[str, Any]]:
    """Every document of the index (without vectors), for the catalog map."""
    index = client.index(index_uid)
    documents: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = index.get_documents({"limit": 10_000, "offset": offset})
        documents.extend(dict(doc) for doc in page.results)
        offset += len(page.results)
        if not page.results or offset >= page.total:
            return documents


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
        import warehouse
        from warehouse.derived import read_latest_rates

        with warehouse.connect(settings.pipeline_db_path, read_only=True) as conn:
            rates = read_latest_rates(conn)
        if rates is None:
            raise SystemExit("the warehouse has no FX rates: run `onecart ingest` first")
        fx = FxTable(
            per_usd={c: r for c, r in rates.rates.items() if c != "USD"}, as_of=rates.as_of
        )
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
