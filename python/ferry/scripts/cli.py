"""The ``ferry`` command: start and stop the node processes of a cluster, and
run a program (a Ray program, with ``--as-ray``) on ferry.

Ray's ``ray start`` / ``ray stop``, with the same flags and defaults::

    ferry start --head [--port 6379] [--node-ip-address IP] [--num-cpus N]
                       [--num-gpus N] [--resources JSON] [--token T] [--temp-dir D]
    ferry start --address IP:PORT [--node-ip-address IP] [--num-cpus N] ...
    ferry stop [--temp-dir D]
    ferry run [--as-ray] script.py [args ...]
    ferry status [--address IP:PORT] [--format table|json]
    ferry list actors|nodes|objects|transfers|groups [--address IP:PORT] [--format table|json]
    ferry memory [--leak-age SECONDS] [--address IP:PORT] [--format table|json]
    ferry timeline [-o trace.json] [--address IP:PORT]
    ferry dashboard [--port 8265] [--host 127.0.0.1] [--address IP:PORT]

``start`` runs ``python -m ferry._private.node_daemon`` detached (its own
session, output appended to ``<temp dir>/logs/node-*.log``) and returns once
the node is ready; ``stop`` ends every node daemon this host's temp dir lists.
``run`` runs the script in this process as ``python script.py args`` would;
with ``--as-ray``, ``import ray`` in it resolves to ferry
(ferry._private.ray_compat, docs/ray-compat.md).
Also run as ``python -m ferry``. Exit status: 0 done, 1 failed, 2 bad usage;
``run`` exits with the script's status.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import runpy
import secrets
import select
import signal
import subprocess
import sys
import time
from typing import Any, Sequence

from ferry import exceptions as ferry_exceptions
from ferry._private import cluster_address
from ferry._private import inventory
from ferry.scripts import state

DEFAULT_PORT = 6379  # Ray's
DASHBOARD_PORT = 8265  # Ray's
# How long `ferry start` waits for the node to be ready.
START_TIMEOUT_S = 20.0  # FERRY_START_TIMEOUT_S
# How long `ferry stop` gives a node after SIGTERM before SIGKILL.
STOP_TIMEOUT_S = 10.0  # FERRY_STOP_TIMEOUT_S
# How often a wait for a daemon looks for its ready file.
_POLL_S = 0.05
_DAEMON_MODULE = "ferry._private.node_daemon"
_LOG_TAIL_LINES = 40


class UsageError(Exception):
    """A bad flag or a missing setting: exit status 2."""


def _timeout(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{name}={raw!r} is not a number of seconds") from None
    if value <= 0:
        raise UsageError(f"{name} must be > 0, got {raw!r}")
    return value


def non_negative(text: str) -> float:
    """argparse type of --num-cpus / --num-gpus."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def port_number(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {text!r}")
    return int(text)


def resources_json(text: str) -> dict[str, float]:
    """argparse type of --resources: a JSON object of name -> number >= 0,
    without CPU and GPU (Ray's rule: those have their own flags)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"expected a JSON object of resource name -> amount, e.g. "
            f"'{{\"accel\": 2}}', got {text!r}")
    from ferry.actor import check_resources
    try:
        return check_resources(value, "the JSON object")
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ferry",
        description="Start and stop the processes of a ferry cluster (as `ray start`), and run "
                    "programs on ferry (Ray programs, with run --as-ray).")
    commands = parser.add_subparsers(dest="command", required=True,
                                     metavar="{start,stop,run,status,list,memory,timeline,dashboard}")

    start = commands.add_parser(
        "start", help="start a ferry node on this host (the head, or one that joins a cluster)",
        description="Start a ferry node process on this host: the cluster's head (--head) or a "
                    "node that joins the cluster at --address.")
    role = start.add_mutually_exclusive_group(required=True)
    role.add_argument("--head", action="store_true", help="start the head node of a new cluster")
    role.add_argument("--address", metavar="IP:PORT",
                      help="join the cluster whose head listens at IP:PORT")
    start.add_argument("--port", type=port_number, default=None,
                       help=f"the head's port (default {DEFAULT_PORT}; --head only)")
    start.add_argument("--node-ip-address", metavar="IP", default=None,
                       help="this node's address in the cluster (head default 127.0.0.1; a "
                            "joining node defaults to its address that routes to the head)")
    start.add_argument("--num-cpus", type=non_negative, default=None,
                       help="CPUs this node offers (default: this host's count)")
    start.add_argument("--num-gpus", type=non_negative, default=None,
                       help="GPUs this node offers (default 0)")
    start.add_argument("--resources", type=resources_json, default=None, metavar="JSON",
                       help="custom resources, a JSON object, e.g. '{\"accel\": 2}'")
    start.add_argument("--token", default=None,
                       help="the cluster token (a head makes one if omitted; a joining node "
                            "reads FERRY_TOKEN or this host's cluster file)")
    start.add_argument("--dashboard", action="store_true",
                       help="serve the dashboard from the head (--head only; on "
                            "--dashboard-host:--dashboard-port)")
    start.add_argument("--dashboard-host", default="127.0.0.1", metavar="IP",
                       help="where the dashboard listens (default 127.0.0.1: it has no login)")
    start.add_argument("--dashboard-port", type=port_number, default=None,
                       help=f"the dashboard's port (default {DASHBOARD_PORT})")
    start.add_argument("--metrics-port", type=port_number, default=None,
                       help="serve this node's Prometheus metrics at "
                            "http://127.0.0.1:PORT/metrics (default: none)")
    start.add_argument("--temp-dir", default=None,
                       help=f"where the node's files and logs go (FERRY_TEMP_DIR, default "
                            f"{cluster_address.DEFAULT_TEMP_DIR})")

    stop = commands.add_parser("stop", help="stop every ferry node process of this host",
                               description="Stop every ferry node process started on this host.")
    stop.add_argument("--temp-dir", default=None,
                      help=f"the temp dir the nodes were started with (FERRY_TEMP_DIR, default "
                           f"{cluster_address.DEFAULT_TEMP_DIR})")

    run = commands.add_parser(
        "run", help="run a Python script on ferry (a Ray program, with --as-ray)",
        description="Run a Python script in this process, as `python script.py args` would. "
                    "With --as-ray, `import ray` and the Ray modules ferry implements resolve "
                    "to ferry, so a Ray program runs unchanged (docs/ray-compat.md).")
    run.add_argument("--as-ray", action="store_true",
                     help="make `import ray` resolve to ferry for the script")
    run.add_argument("script", help="the Python file to run")
    run.add_argument("args", nargs=argparse.REMAINDER, help="the script's arguments")

    status = commands.add_parser(
        "status", help="show the nodes and actors of a running ferry",
        description="Show a running ferry's nodes (resources in use / total) and its actors by "
                    "state: the newest session on this host, else this host's cluster, or the "
                    "cluster at --address.")
    listing = commands.add_parser(
        "list", help="list the actors, nodes, objects, transfers or groups of a running ferry",
        description="List a running ferry's actors, nodes, live objects, recent tensor "
                    "transfers or collective groups, one row each (as `ray list`).")
    listing.add_argument("kind", choices=state.kinds(), help="what to list")
    memory = commands.add_parser(
        "memory", help="show every live object, who keeps it alive and why",
        description="Show every live object of a running ferry grouped by its owner, with what "
                    "keeps it alive (local refs, task arguments, borrowers, a pin), the bytes "
                    "per owner and per node, and the objects older than --leak-age as possible "
                    "leaks (as `ray memory`).")
    memory.add_argument("--leak-age", type=non_negative, default=None, metavar="SECONDS",
                        help="flag objects alive this long as possible leaks (default "
                             f"{inventory.DEFAULT_LEAK_AGE_S:g})")
    trace = commands.add_parser(
        "timeline", help="write the recent tasks, calls and transfers as a Chrome trace",
        description="Write the recent tasks (waiting for arguments, queued, running), calls "
                    "and tensor transfers of every process of a running ferry as a Chrome "
                    "trace, one row per process, for Perfetto or chrome://tracing (as "
                    "`ray timeline`).")
    trace.add_argument("-o", "--output", default=None, metavar="FILE",
                       help="where to write it (default: ferry-timeline-<time>.json here)")
    dashboard = commands.add_parser(
        "dashboard", help="serve the dashboard of a running ferry on localhost",
        description="Serve a web page of a running ferry (nodes, actors, objects, a live "
                    "transfer table and a throughput chart per transport), its JSON API "
                    "(/api/...) and Prometheus metrics (/metrics), until interrupted.")
    dashboard.add_argument("--host", default="127.0.0.1",
                           help="where to listen (default 127.0.0.1: the page has no login)")
    dashboard.add_argument("--port", type=port_number, default=DASHBOARD_PORT,
                           help=f"the port (default {DASHBOARD_PORT}, Ray's)")
    for sub in (status, listing, memory, trace, dashboard):
        sub.add_argument("--address", metavar="IP:PORT", default=None,
                         help="a cluster's head (FERRY_ADDRESS; default: this host's newest "
                              "session, else its cluster)")
        sub.add_argument("--token", default=None,
                         help="the cluster token (FERRY_TOKEN, else this host's cluster file)")
        if sub not in (trace, dashboard):
            sub.add_argument("--format", choices=("table", "json"), default="table",
                             help="a table for people (default) or JSON for programs")
        sub.add_argument("--temp-dir", default=None,
                         help=f"the temp dir to look in (FERRY_TEMP_DIR, default "
                              f"{cluster_address.DEFAULT_TEMP_DIR})")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ferry`` and ``python -m ferry``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        # Outside the try below: the script's own errors and exit status are
        # its own, as under `python script.py`.
        try:
            return run_script(args.script, args.args, as_ray=args.as_ray)
        except UsageError as e:
            parser.exit(2, f"ferry run: error: {e}\n")
    try:
        if args.command == "start":
            return start(args)
        if args.command == "dashboard":
            return serve_dashboard(args)
        if args.command == "timeline":
            print(state.write_timeline(args.output, args.address, args.token,
                                       cluster_address.temp_dir(args.temp_dir)))
            return 0
        if args.command in ("status", "list", "memory"):
            leak_age = getattr(args, "leak_age", None)
            print(state.run(args.command, getattr(args, "kind", None), args.format, args.address,
                            args.token, cluster_address.temp_dir(args.temp_dir),
                            inventory.DEFAULT_LEAK_AGE_S if leak_age is None else leak_age))
            return 0
        return stop(cluster_address.temp_dir(args.temp_dir))
    except state.NotFound as e:
        print(f"ferry {args.command}: {e}", file=sys.stderr)
        return 1
    except UsageError as e:
        parser.exit(2, f"ferry {args.command}: error: {e}\n")
    except (OSError, ValueError, ferry_exceptions.FerryError) as e:
        print(f"ferry {args.command}: {e}", file=sys.stderr)
        return 1


# --- run ---------------------------------------------------------------------


def run_script(script: str, args: Sequence[str], *, as_ray: bool) -> int:
    """Runs ``script`` as ``__main__`` with ``sys.argv`` ``[script, *args]``
    and its folder first on ``sys.path``, as ``python script.py`` does; with
    ``as_ray``, after installing ferry's Ray aliases. Returns 0 when the
    script ends (1 when Ray itself is imported already); its SystemExit and
    exceptions propagate."""
    if not os.path.isfile(script):
        raise UsageError(f"no such file: {script!r}")
    if as_ray:
        from ferry._private import ray_compat
        try:
            ray_compat.install()
        except ImportError as e:  # Ray itself imported already (e.g. by sitecustomize)
            print(f"ferry run: {e}", file=sys.stderr)
            return 1
    sys.argv = [script, *args]
    if sys.path and not getattr(sys.flags, "safe_path", False):  # python -P: no script folder
        # sys.path[0] is the folder `python -m` or the `ferry` command was
        # started from; `python script.py` puts the script's folder there.
        sys.path[0] = os.path.dirname(os.path.realpath(script))
    runpy.run_path(script, run_name="__main__")
    return 0


# --- start -------------------------------------------------------------------


def daemon_options(args: argparse.Namespace, temp: str) -> tuple[dict[str, Any], str]:
    """(the daemon's JSON options, the token it gets through its environment)."""
    common = {
        "num_cpus": float(os.cpu_count() or 1) if args.num_cpus is None else args.num_cpus,
        "num_gpus": 0.0 if args.num_gpus is None else args.num_gpus,
        "resources": args.resources or {},
        "temp_dir": temp,
        "metrics_port": args.metrics_port,
        "dashboard_port": None,
        "dashboard_host": args.dashboard_host,
    }
    if args.dashboard_port is not None and not args.dashboard:
        raise UsageError("--dashboard-port needs --dashboard")
    if args.dashboard:
        if not args.head:
            raise UsageError("--dashboard is for the head (--head)")
        common["dashboard_port"] = (DASHBOARD_PORT if args.dashboard_port is None
                                    else args.dashboard_port)
    if args.head:
        options = {"head": True, "address": "",
                   "port": DEFAULT_PORT if args.port is None else args.port,
                   "node_ip": args.node_ip_address or "127.0.0.1"}
        return {**options, **common}, args.token or ""
    if args.port is not None:
        raise UsageError("--port is for the head (--head); a joining node takes --address")
    try:
        address = cluster_address.parse_address(args.address)
    except ValueError as e:
        raise UsageError(str(e)) from None
    token = args.token or os.environ.get("FERRY_TOKEN") or ""
    if not token:
        known = cluster_address.cluster_file_for(address, temp)
        token = known["token"] if known else ""
    if not token:
        raise UsageError("no cluster token: pass --token or set FERRY_TOKEN (`ferry start "
                         "--head` printed it)")
    options = {"head": False, "address": address, "port": 0,
               "node_ip": args.node_ip_address or ""}
    return {**options, **common}, token


def start(args: argparse.Namespace) -> int:
    start_timeout = _timeout("FERRY_START_TIMEOUT_S", START_TIMEOUT_S)
    temp = cluster_address.ensure_private_dir(cluster_address.temp_dir(args.temp_dir))
    options, token = daemon_options(args, temp)
    if args.head:
        running = _running_cluster(temp)
        if running is not None:
            print(f"ferry start: a ferry cluster is already running on this host at "
                  f"{running['address']} (pid {running['writer_pid']}); run `ferry stop` first",
                  file=sys.stderr)
            return 1
    log_path = _new_log_path(temp)
    command = [sys.executable, "-m", _DAEMON_MODULE, json.dumps(options)]
    env = dict(os.environ, FERRY_TOKEN=token, PYTHONUNBUFFERED="1")
    ready = spawn_and_wait(command, env, temp, log_path, start_timeout)
    if ready is None:
        return 1
    if args.head:
        _print_head_started(ready, temp, log_path)
        if options["dashboard_port"] is not None:
            print(f"The dashboard: http://{options['dashboard_host']}:"
                  f"{options['dashboard_port']}/")
    else:
        print(f"This node joined the ferry cluster at {ready['address']} (node id "
              f"{ready['node_id']}, address {ready['node_ip']}).")
        print(f"Its log: {log_path}. To stop the ferry processes of this host: ferry stop")
    return 0


def spawn_and_wait(command: list[str], env: dict[str, str], temp: str, log_path: str,
                   timeout: float) -> cluster_address.ReadyFile | None:
    """Starts ``command`` detached, its output appended to ``log_path``, and
    waits until it writes its ready file in ``temp`` or exits; None (after
    saying why, with the log's end, and stopping the process) on failure."""
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log_fd,
                                stderr=log_fd, start_new_session=True, close_fds=True)
    finally:
        os.close(log_fd)
    ready_path = cluster_address.ready_file_path(temp, proc.pid)
    deadline = time.monotonic() + timeout
    pidfd = os.pidfd_open(proc.pid)
    try:
        while True:
            ready = cluster_address.read_json(ready_path)
            if ready is not None:
                return cluster_address.ReadyFile(
                    pid=ready["pid"], node_id=ready["node_id"], address=ready["address"],
                    head=ready["head"], node_ip=ready["node_ip"])
            status = proc.poll()
            if status is not None:
                why = f"the ferry node process exited with status {status} before it was ready"
                break
            left = deadline - time.monotonic()
            if left <= 0:
                why = (f"the ferry node process was not ready within {timeout:g} s "
                       f"(FERRY_START_TIMEOUT_S); stopped it")
                _end_process(pidfd, 5.0)
                proc.wait()
                break
            select.select([pidfd], [], [], min(_POLL_S, left))
    finally:
        os.close(pidfd)
    print(f"ferry start: {why}. The end of its log ({log_path}):", file=sys.stderr)
    print(_tail(log_path), file=sys.stderr)
    return None


def serve_dashboard(args: argparse.Namespace) -> int:
    """``ferry dashboard``: serves until interrupted."""
    from ferry.dashboard import server, source  # aiohttp only when asked

    target = state.find_target(args.address, args.token,
                               cluster_address.temp_dir(args.temp_dir))
    print(f"ferry dashboard of {target.what}: http://{args.host}:{args.port}/ (Ctrl-C to stop)",
          flush=True)
    server.serve(source.Source(target), args.host, args.port)
    return 0


def _print_head_started(ready: cluster_address.ReadyFile, temp: str, log_path: str) -> None:
    address = ready["address"]
    cluster = cluster_address.read_cluster_file(temp)
    token = cluster["token"] if cluster and cluster["writer_pid"] == ready["pid"] else "<token>"
    print(f"""ferry head node started at {address} (node id {ready['node_id']}).

To add another host to this cluster, run there:
    ferry start --address {address} --token {token}

To connect a driver to this cluster:
    import ferry
    ferry.init(address="{address}")   # or address="auto" on this host
  (a driver on another host also needs FERRY_TOKEN={token})

To stop the ferry processes of this host:
    ferry stop

Its log: {log_path}""")


def _running_cluster(temp: str) -> cluster_address.ClusterFile | None:
    """This host's cluster file when the daemon that wrote it still runs."""
    try:
        known = cluster_address.read_cluster_file(temp)
    except ValueError:
        return None
    if known is None or not _is_node_daemon(known["writer_pid"]):
        return None
    return known


def _new_log_path(temp: str) -> str:
    logs = cluster_address.ensure_private_dir(os.path.join(temp, "logs"))
    return os.path.join(logs, f"node-{int(time.time())}-{secrets.token_hex(4)}.log")


def _tail(path: str, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:]).rstrip() or "(empty)"
    except OSError as e:
        return f"(cannot read it: {e})"


# --- stop --------------------------------------------------------------------


def stop(temp: str) -> int:
    """``ferry stop``: ends every node daemon listed in ``temp``; removes the
    files of daemons that are gone."""
    grace = _timeout("FERRY_STOP_TIMEOUT_S", STOP_TIMEOUT_S)
    if not os.path.isdir(temp):
        print(f"No ferry node process is running on this host (no {temp}).")
        return 0
    cluster_address.check_private_dir(temp)
    stopped, stale = stop_nodes(temp, grace)
    if stale:
        print(f"Removed {stale} stale ferry node file(s) of processes that are gone.")
    if stopped:
        print(f"Stopped {stopped} ferry node process(es).")
    else:
        print("Stopped 0 ferry node process(es): none was running on this host.")
    return 0


def stop_nodes(temp: str, grace: float) -> tuple[int, int]:
    """-> (daemons stopped, stale ready files removed). Each daemon gets
    SIGTERM, then SIGKILL if it still runs after ``grace`` seconds."""
    stopped = stale = 0
    for path in sorted(glob.glob(os.path.join(temp, cluster_address.READY_FILE_GLOB))):
        try:
            info = cluster_address.read_json(path)
        except ValueError:
            info = None
        pid = info.get("pid") if info else None
        if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 and _stop_daemon(pid, grace):
            stopped += 1
        else:
            stale += 1
        cluster_address.remove_file(path)
        if isinstance(pid, int):
            _remove_cluster_file_of(temp, pid)
    try:
        known = cluster_address.read_cluster_file(temp)
    except ValueError:  # half a file left by a crash: nobody can use it
        cluster_address.remove_file(cluster_address.cluster_file_path(temp))
    else:
        if known is not None and not _is_node_daemon(known["writer_pid"]):
            cluster_address.remove_file(cluster_address.cluster_file_path(temp))
    return stopped, stale


def _stop_daemon(pid: int, grace: float) -> bool:
    """Ends node daemon ``pid``; False if no node daemon runs with that pid
    (it is gone, or the pid now belongs to another program)."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    try:
        # Checked through the pidfd's process: a reused pid is never signalled.
        if not _is_node_daemon(pid):
            return False
        try:
            signal.pidfd_send_signal(pidfd, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            return False
        if not _wait_exit(pidfd, grace):
            print(f"ferry node process {pid} did not exit within {grace:g} s of SIGTERM "
                  f"(FERRY_STOP_TIMEOUT_S); killing it", file=sys.stderr)
            _end_process(pidfd, 5.0, (signal.SIGKILL,))
        return True
    finally:
        os.close(pidfd)


def _end_process(pidfd: int, grace: float,
                 signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGKILL)) -> None:
    """Sends each of ``signals`` in turn until the process exits, waiting up
    to ``grace`` s after each."""
    for sig in signals:
        try:
            signal.pidfd_send_signal(pidfd, sig)
        except ProcessLookupError:
            return
        if _wait_exit(pidfd, grace):
            return


def _wait_exit(pidfd: int, timeout: float) -> bool:
    """True once the process has exited (its pidfd turns readable)."""
    readable, _, _ = select.select([pidfd], [], [], timeout)
    return bool(readable)


def _is_node_daemon(pid: int) -> bool:
    """Whether ``pid`` runs ``python -m ferry._private.node_daemon``."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    module = _DAEMON_MODULE.encode()
    return any(a == b"-m" and b == module for a, b in zip(argv, argv[1:]))


def _remove_cluster_file_of(temp: str, pid: int) -> None:
    try:
        known = cluster_address.read_cluster_file(temp)
    except ValueError:
        return
    if known is not None and known["writer_pid"] == pid:
        cluster_address.remove_file(cluster_address.cluster_file_path(temp))
