"""``ferry status``, ``ferry list`` and ``ferry memory``: what a running ferry
holds, read from its head (``ferry._core.HeadClient``; the head's tables of
nodes and actors) and from each of its processes (inventory.py).

Which ferry: ``--address IP:PORT`` (or ``FERRY_ADDRESS``) names a cluster,
with its token from ``--token``, ``FERRY_TOKEN`` or this host's cluster
file. Without one: the newest embedded session on this host (a driver that
called ``ferry.init()`` with no cluster leaves
``<temp dir>/session_latest/session.json``) while its driver runs, else this
host's cluster (its cluster file).
"""
from __future__ import annotations

import json
import os
import time
from collections import Counter
from typing import Any, Callable, NamedTuple, Sequence

from ferry import _core
from ferry._private import cluster_address, inventory, timeline
from ferry._private.inventory import Inventory, human_age, human_bytes

# The head answers from memory; this bounds a head that does not answer.
TIMEOUT_S = 10.0
SESSION_LATEST = "session_latest"
SESSION_FILE = "session.json"
# Pooled workers of remote functions are actors of this class in the head.
TASK_WORKER_CLASS = "ferry-task-worker"
ACTOR_STATES = ("ALIVE", "PENDING", "RESTARTING", "DEAD")


class Target(NamedTuple):
    address: str  # "IP:PORT" (cluster) or "unix:@..." (embedded session)
    token: str
    what: str  # for the heading: "cluster at IP:PORT", "session 1a2b (driver pid 9)"


class NotFound(Exception):
    """No running ferry to look at."""


def find_target(address: str | None, token: str | None, temp: str) -> Target:
    """The ferry to show (see the module's docstring)."""
    address = address or os.environ.get("FERRY_ADDRESS") or None
    token = token or os.environ.get("FERRY_TOKEN") or None
    if address and address != "auto":
        address = cluster_address.parse_address(address)
        if token is None:
            cluster = cluster_address.cluster_file_for(address, temp)
            if cluster is None:
                raise NotFound(f"no token for the cluster at {address}: pass --token or set "
                               f"FERRY_TOKEN")
            token = cluster["token"]
        return Target(address, token, f"cluster at {address}")
    if address is None:
        session = _running_session(temp)
        if session is not None:
            return session
    cluster = cluster_address.read_cluster_file(temp)
    if cluster is None:
        raise NotFound(f"no running ferry found in {temp}: start a driver (ferry.init()) or a "
                       f"cluster (ferry start --head), or pass --address IP:PORT")
    return Target(cluster["address"], token or cluster["token"],
                  f"cluster at {cluster['address']}")


def _running_session(temp: str) -> Target | None:
    if not os.path.isdir(temp):
        return None
    cluster_address.check_private_dir(temp)  # what it names is trusted: as the cluster file
    path = os.path.join(temp, SESSION_LATEST, SESSION_FILE)
    try:
        value = cluster_address.read_json(path)
    except ValueError:
        return None
    if value is None or not _alive(value.get("pid")):
        return None  # none, or its driver ended without removing it
    return Target(str(value["address"]), str(value["token"]),
                  f"session {value['session']} (driver pid {value['pid']})")


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Tables(NamedTuple):
    nodes: list[dict[str, Any]]
    actors: list[dict[str, Any]]
    inventory: Inventory | None  # what the processes hold, when asked for


def read_tables(target: Target, *, processes: bool = False) -> Tables:
    """The target head's tables; with ``processes``, what each process holds too."""
    client = _core.HeadClient.connect(target.address, target.token)
    nodes = client.nodes(TIMEOUT_S)
    inv = Inventory.gather(client, nodes) if processes else None
    return Tables(nodes, client.actors(TIMEOUT_S), inv)


# --- ferry status ---------------------------------------------------------------


def _amount(x: float) -> str:
    return f"{x:g}"


def _resources(node: dict[str, Any]) -> str:
    total, available = node["Resources"], node["AvailableResources"]
    names = sorted(total, key=lambda n: (n not in ("CPU", "GPU"), n))
    return "  ".join(f"{n} {_amount(total[n] - available.get(n, 0.0))}/{_amount(total[n])}"
                     for n in names)


def status_text(target: Target, tables: Tables) -> str:
    """The compact view of ``ferry status``: nodes with their resources in
    use and the bytes their stores hold, actors by state (pooled task
    workers apart), collective groups."""
    nodes, actors, inv = tables
    assert inv is not None
    stored = inv.bytes_per_node()
    alive = [n for n in nodes if n["Alive"]]
    lines = [f"ferry {target.what}",
             f"Nodes: {len(alive)} alive, {len(nodes) - len(alive)} dead"]
    for n in sorted(nodes, key=lambda n: (not n["IsHead"], n["NodeManagerAddress"])):
        role = "head" if n["IsHead"] else "    "
        state = "" if n["Alive"] else f"  DEAD: {n['DeathCause']}"
        objects, tensors = stored.get(n["NodeID"], (0, 0))
        lines.append(f"  {n['NodeID'][:12]}  {n['NodeManagerAddress']:<15} {role}  "
                     f"{_resources(n)}  actors {n['NumActors']}  "
                     f"object store {human_bytes(objects)}  tensor store {human_bytes(tensors)}"
                     f"{state}")
    user = [a for a in actors if a["class_name"] != TASK_WORKER_CLASS]
    by_state = Counter(a["state"] for a in user)
    counts = ", ".join(f"{by_state.get(s, 0)} {s}" for s in ACTOR_STATES)
    workers = sum(1 for a in actors
                  if a["class_name"] == TASK_WORKER_CLASS and a["state"] == "ALIVE")
    lines.append(f"Actors: {counts}")
    lines.append(f"Task workers (pooled, for remote functions): {workers}")
    groups = inv.group_rows()
    lines.append(f"Collective groups: {len(groups)}")
    for g in groups:
        lines.append(f"  {g['name']}  {g['backend']}  {g['world_size']} members  {g['state']}")
    for why in inv.unanswered:
        lines.append(f"(no answer: {why})")
    return "\n".join(lines)


# --- ferry list -----------------------------------------------------------------

def _join(items: list[str]) -> str:
    return ", ".join(items)


def _micros(us: int) -> str:
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us} us"


# (column, key, format) per kind, for the table; --format json prints every key.
_Column = tuple[str, str, Callable[[Any], str]]
_COLUMNS: dict[str, list[_Column]] = {
    "actors": [("ACTOR_ID", "actor_id", str), ("CLASS", "class_name", str),
               ("NAME", "name", str), ("STATE", "state", str), ("NODE", "node_ip", str),
               ("PID", "pid", str), ("RESTARTS", "num_restarts", str)],
    "nodes": [("NODE_ID", "node_id", str), ("ADDRESS", "address", str),
              ("ALIVE", "alive", str), ("HEAD", "head", str), ("RESOURCES", "resources", str),
              ("ACTORS", "actors", str)],
    "objects": [("OBJECT_ID", "object_id", str), ("OWNER", "owner", str),
                ("NODE", "node", str), ("KIND", "kind", str), ("SIZE", "size", human_bytes),
                ("TRANSPORT", "transport", str), ("LOCAL_REFS", "local_refs", str),
                ("TASK_REFS", "task_refs", str), ("BORROWERS", "borrowers", _join),
                ("TENSORS_IN", "tensors_in", _join), ("AGE", "age_s", human_age)],
    "transfers": [("OBJECT_ID", "object_id", str), ("FROM", "from", str), ("TO", "to", str),
                  ("TRANSPORT", "transport", str), ("PATH", "path", str),
                  ("SIZE", "size", human_bytes), ("TIME", "micros", _micros),
                  ("MB/S", "throughput_mb_s", str), ("ERROR", "error", str)],
    "groups": [("NAME", "name", str), ("BACKEND", "backend", str),
               ("SIZE", "world_size", str), ("MEMBERS", "members", _join),
               ("CREATOR", "creator", str), ("STATE", "state", str)],
}
# The kinds whose rows come from the processes, not the head.
_PROCESS_KINDS = ("objects", "transfers", "groups")


def list_rows(kind: str, tables: Tables) -> list[dict[str, Any]]:
    """One dict per item, in a stable order."""
    nodes, actors, inv = tables
    if kind in _PROCESS_KINDS:
        assert inv is not None
        return {"objects": inv.object_rows, "transfers": inv.transfer_rows,
                "groups": inv.group_rows}[kind]()
    if kind == "actors":
        # The head leaves node_ip empty on its own node in the embedded
        # default; the node table has its address.
        address = {n["NodeID"]: n["NodeManagerAddress"] for n in nodes}
        rows = [dict(a, node_ip=a["node_ip"] or address.get(a["node_id"], "")) for a in actors]
        return sorted(rows, key=lambda a: (a["class_name"], a["name"], a["actor_id"]))
    if kind == "nodes":
        return [{"node_id": n["NodeID"], "address": n["NodeManagerAddress"], "alive": n["Alive"],
                 "head": n["IsHead"], "resources": _resources(n), "actors": n["NumActors"],
                 "total": n["Resources"], "available": n["AvailableResources"],
                 "death_cause": n["DeathCause"]}
                for n in sorted(nodes, key=lambda n: (not n["IsHead"], n["NodeManagerAddress"]))]
    raise ValueError(f"unknown kind {kind!r}")


def table_text(kind: str, rows: list[dict[str, Any]]) -> str:
    columns = _COLUMNS[kind]
    cells = [[title for title, _, _ in columns]]
    for row in rows:
        cells.append([fmt(row[key]) if row[key] not in ("", []) else "-"
                      for _, key, fmt in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)


def run(command: str, kind: str | None, fmt: str, address: str | None, token: str | None,
        temp: str, leak_age_s: float = inventory.DEFAULT_LEAK_AGE_S) -> str:
    """The text ``ferry status`` / ``ferry list KIND`` / ``ferry memory`` prints."""
    target = find_target(address, token, temp)
    tables = read_tables(target, processes=command != "list" or kind in _PROCESS_KINDS)
    if command == "status":
        assert tables.inventory is not None
        if fmt == "json":
            return json.dumps({"target": target.what, "nodes": list_rows("nodes", tables),
                               "actors": list_rows("actors", tables),
                               "groups": list_rows("groups", tables),
                               "store_bytes": {node: {"object_store": o, "tensor_store": t}
                                               for node, (o, t) in
                                               tables.inventory.bytes_per_node().items()}},
                              indent=1)
        return status_text(target, tables)
    if command == "memory":
        assert tables.inventory is not None
        report = inventory.memory_report(tables.inventory, leak_age_s)
        return json.dumps(report, indent=1) if fmt == "json" else inventory.memory_text(report)
    assert kind is not None
    rows = list_rows(kind, tables)
    return json.dumps(rows, indent=1) if fmt == "json" else table_text(kind, rows)


def write_timeline(output: str | None, address: str | None, token: str | None,
                   temp: str) -> str:
    """``ferry timeline``: writes the trace; returns what to print."""
    target = find_target(address, token, temp)
    events = timeline.gather(_core.HeadClient.connect(target.address, target.token))
    path = output or time.strftime("ferry-timeline-%Y%m%d-%H%M%S.json")
    timeline.write_trace(events, path)
    rows = sum(1 for e in events if e.get("name") == "process_name")
    return (f"wrote {len(events)} trace events of {rows} processes of ferry {target.what} to "
            f"{path}; open it in https://ui.perfetto.dev or chrome://tracing")


def kinds() -> Sequence[str]:
    return tuple(_COLUMNS)
