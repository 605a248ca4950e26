"""What the dashboard shows, read from a running ferry: the same rows as
``ferry list ... --format json`` and ``ferry memory --format json``
(ferry/scripts/state.py), gathered at most once per ``max_age_s`` however
many requests ask.

Thread contract: thread-safe; ``snapshot`` blocks while it asks the head and
every process (seconds at most: each wait is bounded).
"""
from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any

from ferry._private import inventory
from ferry.scripts import state

# The throughput chart covers this many seconds, one point per second.
CHART_WINDOW_S = 60


def throughput(transfers: list[dict[str, Any]], now: float,
               window_s: int = CHART_WINDOW_S) -> dict[str, list[float]]:
    """Bytes per second moved by each transport over the last ``window_s``
    seconds (oldest first), from the transfer rows: each transfer counts in
    the second it ended."""
    series: dict[str, list[float]] = defaultdict(lambda: [0.0] * window_s)
    start = int(now) - window_s + 1
    for t in transfers:
        if t["error"]:
            continue
        second = int(t["end_time_s"]) - start
        if 0 <= second < window_s:
            series[t["transport"]][second] += t["size"]
    return dict(series)


class Source:
    def __init__(self, target: state.Target, max_age_s: float = 0.5):
        self.target = target
        self._max_age_s = max_age_s
        self._lock = threading.Lock()
        self._taken = 0.0
        self._tables: state.Tables | None = None

    def tables(self) -> state.Tables:
        """The head's tables and every process's state, at most ``max_age_s`` old."""
        with self._lock:
            if self._tables is None or time.monotonic() - self._taken > self._max_age_s:
                self._tables = state.read_tables(self.target, processes=True)
                self._taken = time.monotonic()
            return self._tables

    def rows(self, kind: str) -> Any:
        """What ``ferry list KIND --format json`` prints (``memory``: ``ferry memory``)."""
        tables = self.tables()
        if kind == "memory":
            assert tables.inventory is not None
            return inventory.memory_report(tables.inventory, inventory.DEFAULT_LEAK_AGE_S)
        return state.list_rows(kind, tables)

    def snapshot(self) -> dict[str, Any]:
        """Everything the page shows, in one answer."""
        tables = self.tables()
        inv = tables.inventory
        assert inv is not None
        transfers = state.list_rows("transfers", tables)
        now = time.time()
        return {
            "target": self.target.what, "time": now,
            "nodes": state.list_rows("nodes", tables),
            "actors": state.list_rows("actors", tables),
            "objects": state.list_rows("objects", tables),
            "transfers": transfers, "groups": state.list_rows("groups", tables),
            "store_bytes": {node: {"object_store": o, "tensor_store": t}
                            for node, (o, t) in inv.bytes_per_node().items()},
            "throughput": throughput(transfers, now),
            "unanswered": inv.unanswered,
        }
