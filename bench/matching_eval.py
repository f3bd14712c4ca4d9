"""Matching quality on the sandbox catalog: which offers are the same product, measured.

    .venv/bin/python -m bench.matching_eval [--offers 12000] [--seed 42] [--no-append]

The sandbox knows the truth: every offer it serves sells one world product, and its image URL
names that product (`/_sandbox/images/<product key>.svg`). This evaluation serves the sandbox
in-process (its WSGI app behind httpx's WSGI transport, no sockets), reads every marketplace's
catalog through the real adapters (the same fetch and normalization as the pipeline), runs the
real matching (warehouse.matching.assign_groups) and compares, at the pair level:

- predicted pairs: two offers put in one product group; true pairs: two offers of one product;
- precision = correct predicted pairs / predicted pairs; recall = correct / true pairs;
- per method (gtin, brand_model, title): a predicted pair counts under the weaker method of its
  two offers (a title-matched offer joined to a GTIN group is a title pair);
- invalid barcodes: the sandbox's DummyMart serves 13-digit barcodes with a wrong check digit for
  products only it sells; none may ever group offers (`invalid_barcodes_used` must be 0).

It prints one line per method, the overall figures, and ends with `precision=0.xxx
recall=0.xxx`; the same is appended to bench/RESULTS.md unless --no-append.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from onecart.services import sandbox_credentials
from onecart.settings import get_settings

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from adapters.base import MarketplaceError  # noqa: E402
from adapters.gtin import normalize_gtin  # noqa: E402
from adapters.registry import build_adapter, load_marketplaces  # noqa: E402
from warehouse.matching import (  # noqa: E402
    METHOD_BRAND_MODEL,
    METHOD_GTIN,
    METHOD_SINGLE,
    METHOD_TITLE,
    GroupAssignment,
    OfferForMatching,
    assign_groups,
)

RESULTS_FILE = REPO_ROOT / "bench" / "RESULTS.md"
SANDBOX_URL = "http://sandbox.invalid"
IMAGE_KEY = re.compile(r"/_sandbox/images/(s\d+|u\d+-\d+)\.svg")
# The sandbox accepts any non-empty credentials.
# Placeholder keys for every marketplace marketplaces.toml serves from the sandbox.
SANDBOX_CREDENTIALS = sandbox_credentials(get_settings(), environ={})
# Where the API formats put a barcode in a raw record (checked before the adapter normalizes it).
BARCODE_FIELDS = ("barcode", "gtin", "ean", "upc", "gtin13")
METHOD_STRENGTH = {METHOD_GTIN: 3, METHOD_BRAND_MODEL: 2, METHOD_TITLE: 1, METHOD_SINGLE: 0}
PRECISION_TARGET = 0.99
RECALL_TARGET = 0.95


@dataclass(frozen=True, slots=True)
class CatalogOffer:
    """One normalized offer with the world product it truly sells."""

    offer: OfferForMatching
    product_key: str
    # A barcode the marketplace sent that fails its check digit (never to be matched on).
    invalid_barcode: str | None = None


@dataclass(slots=True)
class MethodFigures:
    """Pairs a method put together, and how many of them were right."""

    predicted: int = 0
    correct: int = 0

    @property
    def precision(self) -> float:
        return self.correct / self.predicted if self.predicted else 1.0


@dataclass(slots=True)
class Evaluation:
    """The pair-level comparison of predicted groups with the sandbox's truth."""

    offers: int
    products: int
    groups: int
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int
    by_method: dict[str, MethodFigures] = field(default_factory=dict)
    offers_by_method: dict[str, int] = field(default_factory=dict)
    invalid_barcodes: int = 0
    invalid_barcodes_used: int = 0
    rejected_records: int = 0
    seconds: float = 0.0

    @property
    def precision(self) -> float:
        return self.correct_pairs / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.correct_pairs / self.true_pairs if self.true_pairs else 1.0


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def invalid_raw_barcode(record: object) -> str | None:
    """A barcode-like field of a raw record (top level or DummyJSON's `meta`) whose check digit
    is wrong."""
    if not isinstance(record, dict):
        return None
    places = [record, record.get("meta") if isinstance(record.get("meta"), dict) else {}]
    for place, name in ((place, name) for place in places for name in BARCODE_FIELDS):
        value = place.get(name)
        digits = isinstance(value, str) and value.isdigit() and 8 <= len(value) <= 14
        if digits and normalize_gtin(value) is None:
            return str(value)
    return None


def read_sandbox_catalog(offers: int, seed: int) -> tuple[list[CatalogOffer], int, int]:
    """Every marketplace's catalog through its adapter, from an in-process sandbox.

    Returns (offers with their true product, records the adapters rejected, offers whose raw
    record carries a barcode with a wrong check digit).
    """
    from sandbox.app import SandboxConfig, create_app

    app = create_app(SandboxConfig(offers=offers, seed=seed, public_url=SANDBOX_URL))
    transport = httpx.WSGITransport(app=app)  # type: ignore[arg-type]
    environment = {**SANDBOX_CREDENTIALS, **os.environ, "ONECART_SANDBOX_URL": SANDBOX_URL}
    catalog: dict[tuple[str, str], CatalogOffer] = {}
    rejected = 0
    invalid_barcodes = 0
    for config in load_marketplaces(REPO_ROOT / "marketplaces.toml", environment):
        if not config.active:
            continue
        adapter = build_adapter(config, transport=transport)
        for page in adapter.fetch_catalog_pages():
            for record in page.records:
                try:
                    offer = adapter.normalize_record(record)
                except MarketplaceError:
                    rejected += 1
                    continue
                found = IMAGE_KEY.search(offer.image_url or "")
                if found is None:
                    rejected += 1
                    continue
                invalid = invalid_raw_barcode(record)
                if invalid is None and offer.gtin and normalize_gtin(offer.gtin) is None:
                    invalid = offer.gtin
                invalid_barcodes += invalid is not None
                key = (offer.marketplace, offer.external_id)
                # A duplicated record (one of the sandbox's malformations) is one offer, as the
                # warehouse's primary key keeps it.
                catalog.setdefault(
                    key,
                    CatalogOffer(
                        offer=OfferForMatching(
                            marketplace=offer.marketplace,
                            external_id=offer.external_id,
                            title=offer.title,
                            brand=offer.brand,
                            model=offer.model,
                            gtin=offer.gtin,
                            mpn=offer.mpn,
                        ),
                        product_key=found.group(1),
                        invalid_barcode=invalid,
                    ),
                )
    return list(catalog.values()), rejected, invalid_barcodes


def evaluate_assignments(
    catalog: Sequence[CatalogOffer], assignments: Sequence[GroupAssignment]
) -> Evaluation:
    """Pair-level precision and recall of `assignments` against the offers' true products."""
    truth = {item.offer.key: item.product_key for item in catalog}
    invalid = {item.offer.key: item.invalid_barcode for item in catalog if item.invalid_barcode}
    by_group: dict[str, list[GroupAssignment]] = defaultdict(list)
    for assignment in assignments:
        by_group[assignment.group_id].append(assignment)
    products = Counter(truth.values())
    result = Evaluation(
        offers=len(catalog),
        products=len(products),
        groups=len(by_group),
        true_pairs=sum(_pairs(n) for n in products.values()),
        predicted_pairs=0,
        correct_pairs=0,
        by_method={m: MethodFigures() for m in (METHOD_GTIN, METHOD_BRAND_MODEL, METHOD_TITLE)},
        offers_by_method=dict(Counter(a.method for a in assignments)),
    )
    for members in by_group.values():
        for i, first in enumerate(members):
            for second in members[i + 1 :]:
                method = min((first.method, second.method), key=lambda m: METHOD_STRENGTH.get(m, 0))
                figures = result.by_method.setdefault(method, MethodFigures())
                correct = (
                    truth[(first.marketplace, first.external_id)]
                    == truth[(second.marketplace, second.external_id)]
                )
                figures.predicted += 1
                figures.correct += int(correct)
                result.predicted_pairs += 1
                result.correct_pairs += int(correct)
    for assignment in assignments:
        barcode = invalid.get((assignment.marketplace, assignment.external_id))
        # Used = grouped by it: matched by GTIN, or its group keyed by that very barcode.
        if barcode and (
            assignment.method == METHOD_GTIN or barcode in assignment.matching_key.split(":", 1)
        ):
            result.invalid_barcodes_used += 1
    return result


def evaluate(offers: int, seed: int) -> Evaluation:
    """Read the sandbox catalog, run the real matching and compare (see the module docstring)."""
    started = time.perf_counter()
    catalog, rejected, invalid = read_sandbox_catalog(offers, seed)
    assignments = assign_groups(item.offer for item in catalog)
    result = evaluate_assignments(catalog, assignments)
    result.rejected_records = rejected
    result.invalid_barcodes = invalid
    result.seconds = time.perf_counter() - started
    return result


def report_lines(result: Evaluation) -> list[str]:
    """The printed figures: one line per method, the overall line, then the final line."""
    lines = []
    for method in (METHOD_GTIN, METHOD_BRAND_MODEL, METHOD_TITLE):
        figures = result.by_method.get(method, MethodFigures())
        share = figures.correct / result.true_pairs if result.true_pairs else 0.0
        lines.append(
            f"{method:<12} offers={result.offers_by_method.get(method, 0):>7,} "
            f"pairs={figures.predicted:>7,} correct={figures.correct:>7,} "
            f"precision={figures.precision:.3f} recall_share={share:.3f}"
        )
    lines.append(
        f"{'overall':<12} offers={result.offers:>7,} products={result.products:,} "
        f"groups={result.groups:,} true_pairs={result.true_pairs:,} "
        f"predicted_pairs={result.predicted_pairs:,} correct={result.correct_pairs:,} "
        f"invalid_barcodes={result.invalid_barcodes} "
        f"invalid_barcodes_used={result.invalid_barcodes_used}"
    )
    lines.append(f"precision={result.precision:.3f} recall={result.recall:.3f}")
    return lines


def results_section(result: Evaluation, offers: int, seed: int) -> str:
    """The Markdown section appended to bench/RESULTS.md."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    met = (
        result.precision >= PRECISION_TARGET
        and result.recall >= RECALL_TARGET
        and result.invalid_barcodes_used == 0
    )
    rows = [
        f"## Matching quality — {when}",
        "",
        f"`python -m bench.matching_eval --offers {offers} --seed {seed}` on {platform.system()} "
        f"{platform.machine()} ({os.cpu_count()} CPUs), {result.seconds:.1f} s. "
        f"{result.offers:,} offers read through the real adapters from the in-process sandbox "
        f"({result.rejected_records} malformed records rejected by the adapters), "
        f"{result.products:,} true products, {result.groups:,} predicted groups. "
        "Pair level; a pair counts under the weaker method of its two offers.",
        "",
        "| method | offers | predicted pairs | correct | precision | share of true pairs |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for method in (METHOD_GTIN, METHOD_BRAND_MODEL, METHOD_TITLE):
        figures = result.by_method.get(method, MethodFigures())
        share = figures.correct / result.true_pairs if result.true_pairs else 0.0
        rows.append(
            f"| {method} | {result.offers_by_method.get(method, 0):,} | {figures.predicted:,} | "
            f"{figures.correct:,} | {figures.precision:.3f} | {share:.3f} |"
        )
    rows += [
        f"| overall | {result.offers:,} | {result.predicted_pairs:,} | {result.correct_pairs:,} "
        f"| {result.precision:.3f} | recall {result.recall:.3f} |",
        "",
        f"Invalid barcodes in the catalog: {result.invalid_barcodes}; used to group offers: "
        f"{result.invalid_barcodes_used}. Targets precision ≥ {PRECISION_TARGET}, recall ≥ "
        f"{RECALL_TARGET}, invalid barcodes never used: {'met' if met else 'NOT met'}.",
        "",
        "```",
        *report_lines(result),
        "```",
        "",
    ]
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluation, print it, append it to bench/RESULTS.md."""
    from onecart.settings import get_settings

    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--offers", type=int, default=settings.sandbox_offers)
    parser.add_argument("--seed", type=int, default=settings.sandbox_seed)
    parser.add_argument("--no-append", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if not 1 <= args.offers <= 5_000_000:
        parser.error("--offers must be between 1 and 5,000,000")
    result = evaluate(args.offers, args.seed)
    if not args.no_append:
        section = results_section(result, args.offers, args.seed)
        with RESULTS_FILE.open("a") as handle:
            handle.write(section.rstrip() + "\n\n")
    for line in report_lines(result):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
