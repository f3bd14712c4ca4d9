"""Does the assistant say so when the catalog lacks the product asked for? A labelled check on
the evaluation index (bench/assistant_eval.py builds it; run that first).

    python -m bench.assistant_missing_check [--index NAME]

Two lists: products the sandbox world does not make (a wallet, a lawn mower…), which should be
answered "no product is called …" with at most alternatives; and requests the catalog answers
(the evaluation's and the held-out set's paraphrases, and products it holds), which should not.
Prints each request's reading and the two counts; the answers' suggestions are not scored here
(bench/assistant_eval.py does that).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import meilisearch

from assistant.config import get_assistant_settings
from assistant.retrieval import MODE_HYBRID
from assistant.service import answer_prompt
from bench.assistant_eval import EVAL_INDEX_SUFFIX
from bench.assistant_eval_index import read_warehouse_fx
from bench.assistant_eval_labels import EVAL_SET_PATH
from onecart.settings import get_settings

HELD_OUT_PATH: Final = EVAL_SET_PATH.with_name("assistant_heldout_set.json")

# Kinds of product the sandbox world (sandbox/) makes none of.
LACKING: Final = (
    "a black leather wallet",
    "a smart fridge",
    "portable air conditioner",
    "wireless charger",
    "a yoga mat",
    "a set of dumbbells",
    "a lawn mower",
    "a leather sofa",
    "a bicycle helmet",
    "an acoustic guitar",
    "an ergonomic office chair",
    "a cordless drill",
    "a laser printer",
    "a golf umbrella",
    "a baby stroller",
    "a dog bed",
)
# Products the catalog holds, named as shoppers name them.
HELD: Final = (
    "a blender",
    "an air fryer",
    "an electric kettle",
    "a microwave",
    "a board game",
    "a moisturiser",
    "a travel backpack",
    "a bluetooth speaker",
    "noise cancelling headphones",
    "an espresso machine",
    "a vacuum flask",
    "a mirrorless camera",
    "a gaming laptop",
    "a paperback novel",
    "a fitness tracker",
    "a hoodie",
)


def _prompts(path: Path) -> list[str]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [r["prompt"] for r in data["requests"] if r.get("kind", "").endswith("paraphrase")]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.assistant_missing_check")
    parser.add_argument("--index")
    args = parser.parse_args(argv)
    settings = get_settings()
    assistant_settings = get_assistant_settings()
    index_uid = args.index or f"{settings.meili_index}{EVAL_INDEX_SUFFIX}"
    client = meilisearch.Client(settings.meili_url, settings.meili_master_key, timeout=120)
    fx = read_warehouse_fx(settings)
    held = [*HELD, *_prompts(EVAL_SET_PATH), *_prompts(HELD_OUT_PATH)]
    counts = {"lacking": 0, "held": 0}
    for label, prompts in (("lacking", LACKING), ("held", held)):
        for prompt in prompts:
            answer = answer_prompt(
                prompt, client=client, index_uid=index_uid, fx=fx, settings=assistant_settings,
                mode=MODE_HYBRID, use_llm=False,
            )  # fmt: skip
            said_missing = answer.missing_product is not None
            counts[label] += said_missing
            titles = "; ".join(s.title[:40] for s in answer.suggestions[:3])
            print(f"{label:7} {'MISSING' if said_missing else 'found  '} {answer.missing_product or '':12} "
                  f"{len(answer.suggestions):2} | {prompt} | {titles}")  # fmt: skip
    print(
        f"said missing: {counts['lacking']}/{len(LACKING)} lacking, "
        f"{counts['held']}/{len(held)} held"
    )
    print(
        f"RESULT bench=assistant_missing lacking_said={counts['lacking']}/{len(LACKING)} "
        f"held_said={counts['held']}/{len(held)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
