"""The sandbox's rendered catalog records, kept as bytes between reads (issue 11).

A catalog record is a pure function of the world, the offer's price version, its malformation
and the advertised URL (see `SandboxContext.page_validator`). A marketplace's own server keeps
such renderings (a page or fragment cache) rather than building every record on every read; so
does the sandbox now: a whole-catalog read (the Google feed, Fake Store's list, the CSV) and a
page with one record changed re-render only the records whose *stamp* (price version and
malformation) moved since they were kept, and join the kept bytes of the rest. Rendering a
record is 30-60 µs of the sandbox's CPU (the offer, the record, its JSON or XML); the sandbox
runs on the pipeline's cores in the benchmarks, so re-rendering an unchanged catalog slowed the
refresh it measures.

Records are kept per (marketplace, rendering, advertised URL), compressed with zlib (level 1)
in blocks of BLOCK_RECORDS consecutive records, each with the stamp it was rendered at: the
records of a block share their keys and most words, so a block is ~6x smaller than its records
(the 163 MB of records the whole-read catalogs send at 200,000 offers keep in 26 MB: ~0.13 GB
at a million), for ~2-6 µs a record to compress when a block is written and ~1-3 µs to
decompress on a read. A few records rendered
again (a price epoch re-prices ~1 of a block's 100) are kept beside the compressed ones until
there are MAX_PATCHES, rather than compressing the block again for each. At most `max_bytes`
are kept; past that, blocks not kept are rendered on every read, as before.

The stamp kept with a record is the one it was rendered at (from the offer it was built from),
not the one asked for, so a knob changed during a read cannot leave bytes under a wrong stamp.
"""

from __future__ import annotations

import threading
import zlib
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import accumulate, groupby

from sandbox.malformations import MALFORMATION_KINDS

BLOCK_RECORDS = 100
# Enough for every whole-read catalog at a million offers (~0.13 GB), with room for a second
# advertised URL; a bound, not an expectation.
MAX_KEPT_BYTES = 384 * 2**20
COMPRESS_LEVEL = 1
NOT_KEPT = -1
_KIND_CODES: dict[str | None, int] = {
    None: 0,
    **{kind: code for code, kind in enumerate(MALFORMATION_KINDS, 1)},
}
_KINDS_PER_VERSION = len(_KIND_CODES)
# What a kept block costs besides its compressed bytes (two arrays and the objects), and what
# a patch costs besides its bytes (its dict entry, tuple and bytes object).
_BLOCK_OVERHEAD = 16 * BLOCK_RECORDS + 300
_PATCH_OVERHEAD = 200
# Past this many patches a block is compressed again with them.
MAX_PATCHES = 8


def record_stamp(price_version: int, kind: str | None) -> int:
    """What a record's bytes depend on that can change while the sandbox runs, as one int."""
    return price_version * _KINDS_PER_VERSION + _KIND_CODES[kind]


# A record's index -> (the stamp it was rendered at, its bytes).
Render = Callable[[int], tuple[int, bytes]]
# The current stamps of some records of one block, in the order given.
Stamps = Callable[[Sequence[int]], list[int]]
CacheKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class _Block:
    stamps: array  # one per record of the block; NOT_KEPT where none is kept
    ends: array  # BLOCK_RECORDS + 1 offsets of the records in the decompressed data
    data: bytes  # the block's records, joined and compressed
    # Records rendered since, kept beside the compressed ones (slot -> stamp, bytes): a price
    # epoch changes ~1 record of a block, and compressing the block again would cost more
    # than the record did to render.
    patches: Mapping[int, tuple[int, bytes]] = field(default_factory=dict)

    def size(self) -> int:
        patched = sum(len(data) + _PATCH_OVERHEAD for _, data in self.patches.values())
        return len(self.data) + _BLOCK_OVERHEAD + patched

    def record(self, raw: bytes, slot: int) -> bytes:
        """The record in `slot` (the block's decompressed data is `raw`)."""
        patch = self.patches.get(slot)
        if patch is not None:
            return patch[1]
        return raw[self.ends[slot] : self.ends[slot + 1]]

    def stamp(self, slot: int) -> int:
        """The stamp of the record kept in `slot` (NOT_KEPT: none)."""
        patch = self.patches.get(slot)
        return patch[0] if patch is not None else self.stamps[slot]


class RecordCache:
    """Rendered catalog records of every marketplace and rendering, kept compressed by block."""

    def __init__(self, max_bytes: int = MAX_KEPT_BYTES) -> None:
        self.max_bytes = max_bytes
        self.kept_bytes = 0
        # Records rendered and records served from what was kept, since the start (for tests).
        self.rendered = 0
        self.reused = 0
        self._blocks: dict[CacheKey, dict[int, _Block]] = {}
        self._lock = threading.Lock()

    def records(
        self, key: CacheKey, indexes: Iterable[int], stamps: Stamps, render: Render
    ) -> Iterator[bytes]:
        """The bytes of records `indexes` (in that order) under `key`: kept ones whose stamp is
        the current one, the others rendered (and kept)."""
        with self._lock:
            blocks = self._blocks.setdefault(key, {})
        for number, group in groupby(indexes, lambda index: index // BLOCK_RECORDS):
            yield from self._block_records(blocks, number, list(group), stamps, render)

    def _block_records(
        self,
        blocks: dict[int, _Block],
        number: int,
        indexes: list[int],
        stamps: Stamps,
        render: Render,
    ) -> list[bytes]:
        first = number * BLOCK_RECORDS
        current = stamps(indexes)
        block = blocks.get(number)
        raw = zlib.decompress(block.data) if block is not None else b""
        pieces: list[bytes] = []
        fresh: dict[int, tuple[int, bytes]] = {}
        for index, stamp in zip(indexes, current, strict=True):
            slot = index - first
            if block is not None and block.stamp(slot) == stamp:
                pieces.append(block.record(raw, slot))
            else:
                fresh[slot] = rendered = render(index)
                pieces.append(rendered[1])
        self.rendered += len(fresh)
        self.reused += len(indexes) - len(fresh)
        if fresh:
            self._keep(blocks, number, block, raw, fresh)
        return pieces

    def _keep(
        self,
        blocks: dict[int, _Block],
        number: int,
        old: _Block | None,
        raw: bytes,
        fresh: dict[int, tuple[int, bytes]],
    ) -> None:
        """Keep the `fresh` records of block `number` in place of what it held: as patches
        while they are few, else by compressing the block again."""
        if old is not None and len(old.patches.keys() | fresh.keys()) <= MAX_PATCHES:
            block = replace(old, patches={**old.patches, **fresh})
        else:
            stamps = array("q", [NOT_KEPT]) * BLOCK_RECORDS
            records: list[bytes] = []
            for slot in range(BLOCK_RECORDS):
                if slot in fresh:
                    stamps[slot], data = fresh[slot]
                elif old is not None:
                    stamps[slot], data = old.stamp(slot), old.record(raw, slot)
                else:
                    data = b""
                records.append(data)
            block = _Block(
                stamps,
                array("Q", accumulate(map(len, records), initial=0)),
                zlib.compress(b"".join(records), COMPRESS_LEVEL),
            )
        with self._lock:
            replaced = blocks.get(number)
            growth = block.size() - (replaced.size() if replaced is not None else 0)
            if self.kept_bytes + growth > self.max_bytes:
                return
            blocks[number] = block
            self.kept_bytes += growth
