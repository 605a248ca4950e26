"""Helpers for the driver scripts that the cluster tests run inside namespace
hosts (netns.FerryCluster.run_driver puts this folder on PYTHONPATH).

The environment names the cluster: FERRY_ADDRESS (the head, "IP:PORT"),
FERRY_TOKEN, and FERRY_TEST_HOSTS (JSON {"h1": "10.213.0.11", ...}). A
driver prints its results as JSON objects, one per line (``emit``); the test
reads the last one, or each in turn.

Actor classes belong in the driver script itself (cloudpickle sends them by
value), so workers never need to import this module.
"""
from __future__ import annotations

import json
import os
import socket
import sys
from typing import Any

import ferry
from polling import wait_for  # noqa: F401 (driver scripts import it from here)

ADDRESS = os.environ.get("FERRY_ADDRESS", "")
HOSTS: dict[str, str] = json.loads(os.environ.get("FERRY_TEST_HOSTS", "{}"))
# Bound on every blocking get in a driver.
GET_TIMEOUT_S = float(os.environ.get("FERRY_TEST_GET_TIMEOUT", "60"))


def connect(address: str | None = None) -> None:
    """ferry.init(address) (default FERRY_ADDRESS)."""
    ferry.init(address=address or ADDRESS)


def emit(obj: Any) -> None:
    """One JSON line on stdout, flushed (the test may be reading it live)."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def alive_nodes() -> list[dict[str, Any]]:
    return [n for n in ferry.nodes() if n["Alive"]]


def nodes_by_host() -> dict[str, dict[str, Any]]:
    """{host: its alive node}, matched by the node's IP."""
    by_ip = {n["NodeManagerAddress"]: n for n in alive_nodes()}
    return {host: by_ip[ip] for host, ip in HOSTS.items() if ip in by_ip}


def node_id(host: str) -> str:
    nodes = nodes_by_host()
    if host not in nodes:
        raise RuntimeError(f"no alive node on {host} ({HOSTS.get(host)}); nodes: {ferry.nodes()}")
    return nodes[host]["NodeID"]


def host_of(node: str) -> str | None:
    """The host whose node has this id (alive or not)."""
    ips = {n["NodeID"]: n["NodeManagerAddress"] for n in ferry.nodes()}
    return next((h for h, ip in HOSTS.items() if ip == ips.get(node)), None)


def pinned(actor_class: Any, host: str, **options: Any) -> Any:
    """``actor_class.options(...)`` with a hard node affinity to ``host``."""
    from ferry.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    return actor_class.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id(host), soft=False), **options)


def where() -> dict[str, Any]:
    """Where the calling process runs. Actors' ``where`` methods return the
    same dict, built inline (see the module docstring)."""
    return {"node_id": os.environ.get("FERRY_NODE_ID"), "hostname": socket.gethostname(),
            "pid": os.getpid()}


def error(e: BaseException) -> dict[str, Any]:
    """An exception as JSON: its class name, its classes' names, its message."""
    return {"type": type(e).__name__, "mro": [c.__name__ for c in type(e).__mro__],
            "message": str(e)[:2000]}
