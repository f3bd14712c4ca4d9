"""The product index build's record of the documents it made (pipelines.group_search_state):
held as Polars columns a chunk at a time instead of a dict, it must still give every group its
own doc_hash, across chunk boundaries, and null for a group that made no document."""

from __future__ import annotations

import polars as pl

from pipelines.group_search_state import DocHashColumns, _with_doc_hashes


def test_every_added_hash_lands_on_its_group_across_chunks(monkeypatch) -> None:
    monkeypatch.setattr(DocHashColumns, "CHUNK", 3)
    columns = DocHashColumns()
    made = {f"g{n:03d}": f"h{n}" for n in range(8)}  # three chunks: 3 + 3 + 2
    for group_id, doc_hash in made.items():
        columns.add(group_id, doc_hash)
    groups = pl.DataFrame(
        {
            "group_id": ["g007", "g000", "gone", "g004"],
            "input_hash": ["i7", "i0", "ix", "i4"],
        }
    )

    state = _with_doc_hashes(groups, columns.frame())

    assert columns.count == 8
    assert state.rows() == [
        ("g007", "i7", "h7"),
        ("g000", "i0", "h0"),
        ("gone", "ix", None),
        ("g004", "i4", "h4"),
    ]


def test_a_build_that_made_no_document_gives_every_group_none() -> None:
    groups = pl.DataFrame({"group_id": ["g1"], "input_hash": ["i1"]})

    state = _with_doc_hashes(groups, DocHashColumns().frame())

    assert state.get_column("doc_hash").to_list() == [None]
