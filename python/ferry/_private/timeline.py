"""``ferry timeline`` and ``ferry.timeline()``: the recent tasks, calls and
tensor transfers of every process as a Chrome trace (the JSON "Trace Event
Format" that Perfetto, ``chrome://tracing`` and speedscope open).

One row (trace process) per ferry process, named like ``Trainer pid=12
(node 10.0.0.2)``, with three tracks: ``tasks`` (each task it ran; before
it, as async slices, the time it waited for its arguments and the time it
queued behind earlier tasks), ``transfers`` (each transfer that ended there:
its path, bytes and time) and ``calls`` (each call it made, from submission
to reply). Arrows: from a call to the task it ran, and from the task that
produced an object to the transfer that moved its tensors.
"""
from __future__ import annotations

import json
from typing import Any

from ferry._private.inventory import TIMEOUT_S, Inventory, human_bytes, process_name

TASKS, TRANSFERS, CALLS = 1, 2, 3


def _meta(pid: int, name: str, value: Any, tid: int = 0) -> dict[str, Any]:
    return {"ph": "M", "pid": pid, "tid": tid, "name": name, "args": {"name": value}
            if name.endswith("_name") else {"sort_index": value}}


def _slice(pid: int, tid: int, name: str, start_us: float, end_us: float,
           args: dict[str, Any]) -> dict[str, Any]:
    return {"ph": "X", "pid": pid, "tid": tid, "name": name, "ts": start_us,
            "dur": max(end_us - start_us, 1), "args": args}


def _async(pid: int, tid: int, name: str, key: str, start_us: float, end_us: float,
           cat: str) -> list[dict[str, Any]]:
    # id2.local: the slice belongs to this process's row, not a global one.
    common = {"pid": pid, "tid": tid, "name": name, "cat": cat, "id2": {"local": key}}
    return [dict(common, ph="b", ts=start_us), dict(common, ph="e", ts=end_us)]


class _FlowIds(dict[str, int]):
    """Small numbers for the arrows' ids: viewers read a flow id as a
    64-bit number, which a 128-bit hex id is not."""

    def of(self, key: str) -> int:
        return self.setdefault(key, len(self) + 1)


def _flow(phase: str, pid: int, tid: int, ts: float, kind: str, key: str,
          ids: _FlowIds) -> dict[str, Any]:
    event = {"ph": phase, "pid": pid, "tid": tid, "ts": ts, "name": kind, "cat": kind,
             "id": ids.of(f"{kind}:{key}"), "args": {"key": key}}
    if phase == "f":
        event["bp"] = "e"  # binds to the slice that encloses it
    return event


def _is_id(hex_id: str) -> bool:
    return bool(hex_id.strip("0"))


def _process_events(trace_pid: int, state: dict[str, Any], row: str, moved: set[str],
                    ids: _FlowIds) -> list[dict[str, Any]]:
    """One process's events; `moved`: the objects some process received
    (the tasks that made them start a data arrow)."""
    events = [_meta(trace_pid, "process_name", row), _meta(trace_pid, "process_sort_index",
                                                           trace_pid)]
    for tid, name in ((TASKS, "tasks"), (TRANSFERS, "transfers"), (CALLS, "calls")):
        events.append(_meta(trace_pid, "thread_name", name, tid))
    for i, t in enumerate(state["tasks"]):
        # A task with no id (an actor's creation) has no call arrow, and
        # its async slices a key of their own.
        key = t["task_id"] if _is_id(t["task_id"]) else f"{trace_pid}.{i}"
        if t["resolved_us"] > t["arrived_us"]:
            events += _async(trace_pid, TASKS, f"waiting for arguments: {t['method']}", key,
                             t["arrived_us"], t["resolved_us"], "task")
        if t["started_us"] > t["resolved_us"]:
            events += _async(trace_pid, TASKS, f"queued: {t['method']}", key, t["resolved_us"],
                             t["started_us"], "task")
        events.append(_slice(trace_pid, TASKS, t["method"], t["started_us"], t["finished_us"],
                             {"task_id": key, "caller": t["caller_worker_id"]}))
        if _is_id(t["task_id"]):
            events.append(_flow("f", trace_pid, TASKS, t["started_us"], "call", key, ids))
        if t["first_return"] in moved:
            events.append(_flow("s", trace_pid, TASKS, max(t["finished_us"] - 1,
                                                           t["started_us"]),
                                "data", t["first_return"], ids))
    marker_end = 0.0  # submit markers are 1 us long and must not overlap
    for c in state["calls"]:
        if not _is_id(c["task_id"]):
            continue
        at = max(c["submitted_us"], marker_end)
        marker_end = at + 1
        events.append(_slice(trace_pid, CALLS, f"submit {c['method']}", at, marker_end,
                             {"task_id": c["task_id"], "actor_id": c["actor_id"]}))
        events.append(_flow("s", trace_pid, CALLS, at, "call", c["task_id"], ids))
        events += _async(trace_pid, CALLS, f"call {c['method']}", c["task_id"],
                         c["submitted_us"], max(c["replied_us"], c["submitted_us"]), "call")
    for tr in state["transfers"]:
        end = round(tr["end_time_s"] * 1e6)  # whole microseconds: phases meet exactly
        start = end - tr["micros"]
        if tr["setup_micros"] > 0:
            events.append(_slice(trace_pid, TRANSFERS, f"allocate {human_bytes(tr['size'])}",
                                 start - tr["setup_micros"], start,
                                 {"object_id": tr["object_id"], "pooled": tr["pooled"]}))
        events.append(_slice(trace_pid, TRANSFERS,
                             f"{tr['direction']} {tr['transport']} {human_bytes(tr['size'])}",
                             start, end,
                             {"object_id": tr["object_id"], "path": tr["transport"],
                              "bytes": tr["size"], "peer": tr["peer"], "pooled": tr["pooled"],
                              "error": tr["error"]}))
        if tr["direction"] == "recv":
            events.append(_flow("f", trace_pid, TRANSFERS, start, "data", tr["object_id"], ids))
    return events


def trace_events(inv: Inventory) -> list[dict[str, Any]]:
    """The Chrome trace events of every process that answered, in time order
    after the metadata. Trace pids are small numbers (real pids may repeat
    across hosts); each row's name has the real pid and node."""
    meta: list[dict[str, Any]] = []
    timed: list[dict[str, Any]] = []
    moved = {t["object_id"] for _, state in inv.answered() for t in state["transfers"]
             if t["direction"] == "recv"}
    ids = _FlowIds()
    for index, (p, state) in enumerate(inv.answered(), start=1):
        row = f"{process_name(p)} (node {inv.node_of(p)})"
        for e in _process_events(index, state, row, moved, ids):
            (meta if e["ph"] == "M" else timed).append(e)
    timed.sort(key=lambda e: e["ts"])
    return meta + timed


def gather(client: Any) -> list[dict[str, Any]]:
    """Asks every process of the session behind ``client`` (a
    ``_core.HeadClient``) for its spans and transfers: the trace events."""
    inv = Inventory.gather(client, client.nodes(TIMEOUT_S), timeline=True)
    return trace_events(inv)


def write_trace(events: list[dict[str, Any]], path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"traceEvents": events, "displayTimeUnit": "ms"}, f)
