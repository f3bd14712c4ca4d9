"""What a listing costs the site after Meilisearch has answered, and how waiting changes it.

    python -m bench.listing_after_answer --reuse HOME [--rounds 8] [--repeat 2]

On the index and DB a `bench.search_bench --keep` run left in HOME, GET /search for the
benchmark's 24 listing queries goes through the whole WSGI app in process (as bench.listing_cpu
does), and the thread CPU from the moment the answer is in hand to the end of the response is
measured (the cards, both partials, the response and its log line: what a shopper waits for
after Meilisearch, and what one client's throughput pays for). Three ways of getting the answer:
- `live`: from Meilisearch, as the site does (the frame renders while it works);
- `recorded`: the same answer replayed at once (no wait: the processor's caches are warm);
- `after_sleep`: the same answer replayed after sleeping as long as Meilisearch takes (~9 ms).
`recorded` against the other two is the price of the caches the wait lets go cold.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.listing_cpu import kept_home_app, start_kept_meilisearch, wsgi_get  # noqa: E402
from bench.search_queries import LISTING_QUERIES  # noqa: E402
from onecart import processes  # noqa: E402

MODES = ("live", "recorded", "after_sleep")
MEILISEARCH_WAIT_S = 0.009


class AnswerSource:
    """Stands in for search_index.client._exchange: asks Meilisearch (`live`, recording the
    answer) or replays the recorded answer; notes the thread CPU when the answer is in hand."""

    def __init__(self, exchange: Callable[..., tuple[int, bytes]]) -> None:
        self.exchange = exchange
        self.mode = "live"
        self.recorded: dict[bytes, tuple[int, bytes]] = {}
        self.answered_cpu = 0.0

    def __call__(
        self,
        address: Any,
        path: str,
        body: bytes,
        headers: dict[str, str],
        while_waiting: Callable[[], object] | None = None,
    ) -> tuple[int, bytes]:
        if self.mode == "live":
            answer = self.exchange(address, path, body, headers, while_waiting)
            self.recorded[body] = answer
        else:
            if while_waiting is not None:
                while_waiting()
            if self.mode == "after_sleep":
                time.sleep(MEILISEARCH_WAIT_S)
            answer = self.recorded[body]
        self.answered_cpu = time.thread_time()
        return answer


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reuse", metavar="HOME", required=True, help="a kept search_bench home")
    parser.add_argument("--rounds", type=int, default=8, help="passes over the 24 queries")
    parser.add_argument("--repeat", type=int, default=2, help="blocks per mode, alternated")
    args = parser.parse_args(argv)

    home = Path(args.reuse).resolve()
    meili_url, meili = start_kept_meilisearch(home, "after-answer-meilisearch")
    try:
        import search_index.client as search_client

        source = AnswerSource(search_client._exchange)
        search_client._exchange = source  # type: ignore[assignment]
        app = kept_home_app(home, meili_url)
        for query in LISTING_QUERIES:  # warm-up, and every answer recorded
            wsgi_get(app, "/search", query)
        gc.collect()
        gc.freeze()
        medians: dict[str, list[float]] = {mode: [] for mode in MODES}
        for _ in range(args.repeat):
            for mode in MODES:
                source.mode = mode
                samples = []
                for _ in range(args.rounds):
                    for query in LISTING_QUERIES:
                        wsgi_get(app, "/search", query)
                        samples.append((time.thread_time() - source.answered_cpu) * 1000)
                medians[mode].append(statistics.median(samples))
                print(f"{mode:12s} thread CPU after the answer: median {medians[mode][-1]:.3f} ms")
        figures = " ".join(
            f"{mode}_ms={','.join(f'{m:.3f}' for m in medians[mode])}" for mode in MODES
        )
        print(f"RESULT bench=listing_after_answer {figures}")
    finally:
        processes.stop_pid(meili.pid)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
