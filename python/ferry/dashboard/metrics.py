"""Prometheus metrics of a running ferry, gathered when scraped
(``prometheus_client``'s custom-collector API): what every process says of
itself (tasks, calls, transfers by transport, bytes, failures, store sizes)
summed per node, and the head's counts of nodes and actors.

A collector for one node (``node_id``) reports only the processes of that
node: what a node's own ``/metrics`` serves (``ferry start
--metrics-port``). The counters are sums over the live processes, so one
drops when a process exits: Prometheus' ``rate`` reads a drop as a reset.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ferry.dashboard.source import Source
from ferry.scripts import state


class FerryCollector(Collector):
    def __init__(self, source: Source, node_id: str | None = None):
        self._source = source
        self._node_id = node_id

    def describe(self) -> list[Metric]:
        return []  # gathered on scrape only: registering must not ask the ferry

    def collect(self) -> Iterator[Metric]:
        tables = self._source.tables()
        inv = tables.inventory
        assert inv is not None
        node_ip = {n["NodeID"]: n["NodeManagerAddress"] for n in tables.nodes}
        mine = [(p, s) for p, s in inv.answered()
                if self._node_id is None or p["node_id"] == self._node_id]

        def node_of(p: dict[str, Any]) -> str:
            return node_ip.get(p["node_id"], "") or p["node_ip"] or "-"

        yield from self._cluster(tables)
        sums: dict[str, Counter[str]] = defaultdict(Counter)
        for p, s in mine:
            for key in ("tasks_run", "tasks_failed", "calls_made", "object_store_bytes",
                        "tensor_store_bytes", "num_owned"):
                sums[node_of(p)][key] += s[key]
            sums[node_of(p)]["processes"] += 1
        per_node = [
            ("ferry_tasks", "Tasks run to the end, failed ones included", "tasks_run", True),
            ("ferry_task_failures", "Tasks that returned an error", "tasks_failed", True),
            ("ferry_calls", "Actor calls and tasks submitted", "calls_made", True),
            ("ferry_object_store_bytes", "Bytes of values held (inline and shared memory)",
             "object_store_bytes", False),
            ("ferry_tensor_store_bytes", "Bytes of tensors kept for RDT objects",
             "tensor_store_bytes", False),
            ("ferry_owned_objects", "Live objects owned by the node's processes", "num_owned",
             False),
            ("ferry_processes", "Drivers and workers that answered", "processes", False),
        ]
        for name, doc, key, counter in per_node:
            family = (CounterMetricFamily if counter else GaugeMetricFamily)(
                name, doc, labels=["node"])
            for node, values in sorted(sums.items()):
                family.add_metric([node], values[key])
            yield family
        transfers: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
        for p, s in mine:
            for t in s["transfer_totals"]:
                labels = (node_of(p), t["transport"], t["direction"])
                for field in ("count", "bytes", "failures"):
                    transfers[labels][field] += t[field]
        for name, doc, field in (
                ("ferry_transfers", "Tensor transfers by the path the bytes took", "count"),
                ("ferry_transfer_bytes", "Bytes moved by tensor transfers", "bytes"),
                ("ferry_transfer_failures", "Tensor transfers that failed", "failures")):
            family = CounterMetricFamily(name, doc, labels=["node", "transport", "direction"])
            for labels, values in sorted(transfers.items()):
                family.add_metric(list(labels), values[field])
            yield family
        unanswered = GaugeMetricFamily("ferry_unanswered_processes",
                                       "Processes that gave no answer to this scrape")
        unanswered.add_metric([], len(inv.unanswered))
        yield unanswered

    def _cluster(self, tables: Any) -> Iterator[Metric]:
        nodes = GaugeMetricFamily("ferry_nodes", "Nodes by state", labels=["state"])
        alive = sum(1 for n in tables.nodes if n["Alive"])
        nodes.add_metric(["alive"], alive)
        nodes.add_metric(["dead"], len(tables.nodes) - alive)
        yield nodes
        actors = GaugeMetricFamily("ferry_actors", "Actors by state (pooled task workers apart)",
                                   labels=["state"])
        by_state = Counter(a["state"] for a in tables.actors
                           if a["class_name"] != state.TASK_WORKER_CLASS)
        for s in ("ALIVE", "PENDING", "RESTARTING", "DEAD"):
            actors.add_metric([s], by_state.get(s, 0))
        yield actors
