"""The optional per-process cache of search answers (SEARCH_CACHE_SECONDS; 0 turns it off)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any


class ResultCache:
    """A small per-process cache of multi-search answers, keyed by the exact request body.

    The index changes only when the pipeline runs (every 30 minutes by default), while the same
    listings (home categories, popular searches, page 1 of a query typed by many shoppers) are
    asked again and again; a short time-to-live bounds how stale an answer can be. Thread-safe;
    least recently used entries go first once `max_entries` is reached.
    """

    def __init__(self, ttl_seconds: float, max_entries: int = 512) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: bytes) -> Any:
        """The cached answer for `key`, or None when absent or expired."""
        if self.ttl_seconds <= 0:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            stored_at, results = entry
            if time.monotonic() - stored_at > self.ttl_seconds:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return results

    def put(self, key: bytes, results: Any) -> None:
        """Remember an answer (raw results or a parsed form; nobody may mutate it afterwards)."""
        if self.ttl_seconds <= 0:
            return
        with self._lock:
            self._entries[key] = (time.monotonic(), results)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
