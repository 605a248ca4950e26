"""A ferry node process: ``python -m ferry._private.node_daemon '<json options>'``.

``ferry start`` runs it detached (Ray's ``ray start`` starts its raylet the
same way). It starts a ``_core.Node`` — the cluster's head, or a node that
joins one — and announces it with files in the temp dir (see
``cluster_address``): the cluster file on a head (or on a joining node of a
host that has none), then its ready file ``node-<pid>.json``. It runs until
SIGTERM/SIGINT (``ferry stop``) or until the node stops by itself (its head
was lost), removes its files and exits: 0 when it was told to stop, 1 with
the reason otherwise.

The JSON options: "head" (bool), "address" ("IP:PORT" of the head when
joining, "" on a head), "port" (int), "node_ip", "num_cpus", "num_gpus",
"resources" (name -> amount) and "temp_dir". The cluster token comes from the
environment (FERRY_TOKEN, "" on a head: the node makes one), never from argv,
which other users can read.
"""
from __future__ import annotations

import json
import os
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING, Any, Callable, Protocol

from ferry._private import cluster_address

if TYPE_CHECKING:
    from ferry._core import NodeOptions

# How long one wait for the node lasts: signal handlers run between waits.
_WAIT_SLICE_S = 1.0


class NodeLike(Protocol):
    """What the daemon needs of ``_core.Node`` (a fake in tests)."""
    @property
    def address(self) -> str: ...
    @property
    def token(self) -> str: ...
    @property
    def node_id(self) -> str: ...
    @property
    def node_ip(self) -> str: ...
    def wait(self, timeout: float | None) -> str | None: ...
    def stop(self) -> None: ...


def serve(options: dict[str, Any], token: str,
          start_node: Callable[[NodeOptions], NodeLike]) -> int:
    """Starts the node with ``start_node``, announces it, waits until it
    stops; returns the process's exit status. Runs on the main thread (it
    installs the SIGTERM and SIGINT handlers, and restores them)."""
    temp = options["temp_dir"]
    node_options: NodeOptions = {
        "head": bool(options["head"]), "address": options["address"], "port": options["port"],
        "node_ip": options["node_ip"], "token": token, "num_cpus": options["num_cpus"],
        "num_gpus": options["num_gpus"], "resources": options["resources"],
        "log_dir": os.path.join(temp, "logs")}
    node: NodeLike | None = None
    signalled = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal signalled
        signalled = True
        if node is not None:
            node.stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    written: list[str] = []
    servers: list[Any] = []
    serving = True
    try:
        try:
            started = start_node(node_options)
        except Exception as e:  # the core's error, whatever its type: report it and exit
            print(f"ferry node failed to start: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
        node = started
        if signalled:  # a signal came while the node was starting
            started.stop()
        else:
            try:
                servers = _serve_web(started, options)
            except OSError as e:  # the port is taken, or not ours to take
                print(f"ferry node cannot serve its dashboard or metrics: {e}", file=sys.stderr)
                started.stop()
                serving = False
        if not signalled and serving:
            try:
                _announce(started, options, temp, written)
                role = "head node" if options["head"] else "node"
                print(f"ferry {role} {started.node_id} ({started.node_ip}) of the cluster at "
                      f"{started.address} is running (pid {os.getpid()})", flush=True)
            except OSError as e:
                print(f"ferry node cannot write its files in {temp}: {e}", file=sys.stderr)
                started.stop()
        reason = started.wait(_WAIT_SLICE_S)
        while reason is None:
            reason = started.wait(_WAIT_SLICE_S)
    finally:
        for server in servers:
            server.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
        for path in written:
            _remove_own(path)
    print(f"ferry node {started.node_id} stopped: {reason}", file=sys.stderr, flush=True)
    return 0 if signalled else 1


def _serve_web(node: NodeLike, options: dict[str, Any]) -> list[Any]:
    """The dashboard (a head with --dashboard) and this node's /metrics
    (--metrics-port), each on a thread of its own, reading this cluster."""
    dashboard_port = options.get("dashboard_port")
    metrics_port = options.get("metrics_port")
    if dashboard_port is None and metrics_port is None:
        return []
    from ferry.dashboard import server, source  # aiohttp only when asked
    from ferry.scripts import state

    target = state.Target(node.address, node.token, f"cluster at {node.address}")
    servers = []
    if dashboard_port is not None:
        servers.append(server.start_in_thread(source.Source(target),
                                              options.get("dashboard_host", "127.0.0.1"),
                                              dashboard_port))
    if metrics_port is not None:
        servers.append(server.start_in_thread(source.Source(target), "127.0.0.1", metrics_port,
                                              page=False, node_id=node.node_id))
    return servers


def _announce(node: NodeLike, options: dict[str, Any], temp: str, written: list[str]) -> None:
    """Writes the cluster file (a head always; a joining node only where the
    host has none) and then the ready file; appends each path written."""
    pid = os.getpid()
    cluster = cluster_address.ClusterFile(address=node.address, token=node.token,
                                          node_ip=node.node_ip, node_id=node.node_id,
                                          writer_pid=pid)
    path = cluster_address.cluster_file_path(temp)
    if cluster_address.write_private_json(path, cluster, replace=bool(options["head"])):
        written.append(path)
    ready = cluster_address.ReadyFile(pid=pid, node_id=node.node_id, address=node.address,
                                      head=bool(options["head"]), node_ip=node.node_ip)
    path = cluster_address.ready_file_path(temp, pid)
    cluster_address.write_private_json(path, ready)
    written.append(path)


def _remove_own(path: str) -> None:
    """Removes ``path`` unless another daemon has replaced it since (a head
    started later on this host owns the cluster file then)."""
    try:
        value = cluster_address.read_json(path)
    except ValueError:
        return
    if value is not None and value.get("writer_pid", value.get("pid")) == os.getpid():
        cluster_address.remove_file(path)


def main(argv: list[str] | None = None,
         start_node: Callable[[NodeOptions], NodeLike] | None = None) -> int:
    """The process's entry point; ``start_node`` is ``_core.Node.start``
    unless a test passes a fake."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m ferry._private.node_daemon '<json options>' (run by `ferry start`)",
              file=sys.stderr)
        return 2
    options = json.loads(args[0])
    # Not passed on to the workers this node spawns: the core gives them theirs.
    token = os.environ.pop("FERRY_TOKEN", "")
    if start_node is None:
        from ferry import _core
        start_node = _core.Node.start
    return serve(options, token, start_node)


if __name__ == "__main__":
    sys.exit(main())
