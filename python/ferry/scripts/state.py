"""``ferry status`` and ``ferry list``: what a running ferry holds, read from
its head (``ferry._core.HeadClient``; the head's tables of nodes and actors).

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
from collections import Counter
from typing import Any, NamedTuple, Sequence

from ferry import _core
from ferry._private import cluster_address

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


def read_tables(target: Target) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(nodes, actors) from the target's head."""
    client = _core.HeadClient.connect(target.address, target.token)
    return client.nodes(TIMEOUT_S), client.actors(TIMEOUT_S)


# --- ferry status ---------------------------------------------------------------


def _amount(x: float) -> str:
    return f"{x:g}"


def _resources(node: dict[str, Any]) -> str:
    total, available = node["Resources"], node["AvailableResources"]
    names = sorted(total, key=lambda n: (n not in ("CPU", "GPU"), n))
    return "  ".join(f"{n} {_amount(total[n] - available.get(n, 0.0))}/{_amount(total[n])}"
                     for n in names)


def status_text(target: Target, nodes: list[dict[str, Any]],
                actors: list[dict[str, Any]]) -> str:
    """The compact view of ``ferry status``: nodes with their resources in
    use, actors by state (pooled task workers apart)."""
    alive = [n for n in nodes if n["Alive"]]
    lines = [f"ferry {target.what}",
             f"Nodes: {len(alive)} alive, {len(nodes) - len(alive)} dead"]
    for n in sorted(nodes, key=lambda n: (not n["IsHead"], n["NodeManagerAddress"])):
        role = "head" if n["IsHead"] else "    "
        state = "" if n["Alive"] else f"  DEAD: {n['DeathCause']}"
        lines.append(f"  {n['NodeID'][:12]}  {n['NodeManagerAddress']:<15} {role}  "
                     f"{_resources(n)}  actors {n['NumActors']}{state}")
    user = [a for a in actors if a["class_name"] != TASK_WORKER_CLASS]
    by_state = Counter(a["state"] for a in user)
    counts = ", ".join(f"{by_state.get(s, 0)} {s}" for s in ACTOR_STATES)
    workers = sum(1 for a in actors
                  if a["class_name"] == TASK_WORKER_CLASS and a["state"] == "ALIVE")
    lines.append(f"Actors: {counts}")
    lines.append(f"Task workers (pooled, for remote functions): {workers}")
    return "\n".join(lines)


# --- ferry list -----------------------------------------------------------------

# (column, key) per kind, for the table; --format json prints every key.
_COLUMNS = {
    "actors": [("ACTOR_ID", "actor_id"), ("CLASS", "class_name"), ("NAME", "name"),
               ("STATE", "state"), ("NODE", "node_ip"), ("PID", "pid"),
               ("RESTARTS", "num_restarts")],
    "nodes": [("NODE_ID", "node_id"), ("ADDRESS", "address"), ("ALIVE", "alive"),
              ("HEAD", "head"), ("RESOURCES", "resources"), ("ACTORS", "actors")],
}


def list_rows(kind: str, nodes: list[dict[str, Any]],
              actors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One dict per item, in a stable order."""
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
    cells = [[title for title, _ in columns]]
    for row in rows:
        cells.append([str(row[key]) if row[key] != "" else "-" for _, key in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)


def run(command: str, kind: str | None, fmt: str, address: str | None, token: str | None,
        temp: str) -> str:
    """The text ``ferry status`` / ``ferry list KIND`` prints."""
    target = find_target(address, token, temp)
    nodes, actors = read_tables(target)
    if command == "status":
        if fmt == "json":
            return json.dumps({"target": target.what, "nodes": list_rows("nodes", nodes, actors),
                               "actors": list_rows("actors", nodes, actors)}, indent=1)
        return status_text(target, nodes, actors)
    assert kind is not None
    rows = list_rows(kind, nodes, actors)
    return json.dumps(rows, indent=1) if fmt == "json" else table_text(kind, rows)


def kinds() -> Sequence[str]:
    return tuple(_COLUMNS)
