"""Namespace hosts and ferry clusters on them, for python/tests/cluster and
bench/cluster_transfer.py. Plain Python (no pytest), so the benchmark can
use it too.

* ``NetnsHosts(n)`` drives scripts/netns-cluster.sh: hosts h1..hN
  (namespaces ferry-h1..ferry-hN, addresses 10.213.0.11..), ``up``/``down``,
  ``cut``/``heal``, ``shape``/``unshape``, the argv that runs a command inside
  a host, the processes living in the hosts, and a host's transmitted bytes.
* ``FerryCluster(hosts, ...)`` starts ``ferry start --head`` on h1 and
  ``ferry start --address`` on the others, each through the script's
  ``exec``; runs driver scripts inside a host (``run_driver``,
  ``driver_json``, ``popen_driver``); and ``stop``s with ``ferry stop`` on
  every host, then checks that no process is left in the hosts and that no
  new ferry file is left in /dev/shm.

Every wait has a deadline; nothing sleeps to synchronize. Processes are told
apart by their network namespace (``/proc/<pid>/ns/net`` against
``/run/netns/ferry-hI``), so ferry processes of other runs on this machine,
outside the hosts, are never counted or signalled.

Drivers run with ``python/tests/cluster`` on PYTHONPATH and import
``driver_lib`` (connect, node ids by host, pinning, JSON output).
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from .polling import wait_for

CLUSTER_TESTS_DIR = Path(__file__).resolve().parent
TESTS_DIR = CLUSTER_TESTS_DIR.parent
PYTHON_DIR = TESTS_DIR.parent
REPO = PYTHON_DIR.parent
SCRIPT = REPO / "scripts" / "netns-cluster.sh"

# Kept in step with scripts/netns-cluster.sh.
HOST_NS_PREFIX = "ferry-"  # host "h2" is namespace "ferry-h2"
SUBNET_PREFIX = "10.213.0"
HOST_OCTET_BASE = 10
STATE_ROOT = Path("/tmp/ferry-netns")  # FERRY_TEMP_DIR of host hI is STATE_ROOT/hI
# The script's exit codes that mean "this machine cannot make namespace hosts".
_EXIT_NOT_ROOT, _EXIT_NO_NETNS = 2, 3

HEAD_PORT = 6379
# `ferry start` waits for its node (FERRY_START_TIMEOUT_S, 20 s); this bounds the command.
START_TIMEOUT_S = float(os.environ.get("FERRY_TEST_CLUSTER_START_TIMEOUT_S", "60"))
# `ferry stop` gives each daemon FERRY_STOP_TIMEOUT_S (10 s) before SIGKILL.
STOP_TIMEOUT_S = float(os.environ.get("FERRY_TEST_CLUSTER_STOP_TIMEOUT_S", "60"))
DRIVER_TIMEOUT_S = float(os.environ.get("FERRY_TEST_DRIVER_TIMEOUT_S", "180"))
# How long processes may take to disappear after `ferry stop`.
EXIT_DEADLINE_S = float(os.environ.get("FERRY_TEST_EXIT_DEADLINE", "15"))
# Markers of ferry's own processes in a command line.
FERRY_PROCESS_MARKERS = ("ferry._worker", "ferry._private.node_daemon")


class NetnsUnavailable(Exception):
    """This machine cannot make namespace hosts (not root, no namespaces, no tools)."""


class ClusterError(Exception):
    """A cluster could not start, or left processes or shared memory behind."""


def host_index(host: str) -> int:
    return int(host.removeprefix(HOST_NS_PREFIX).removeprefix("h"))


def host_ip(host: str) -> str:
    return f"{SUBNET_PREFIX}.{HOST_OCTET_BASE + host_index(host)}"


def host_temp_dir(host: str) -> Path:
    return STATE_ROOT / f"h{host_index(host)}"


def shm_entries() -> set[str]:
    try:
        return set(os.listdir("/dev/shm"))
    except FileNotFoundError:
        return set()


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    """True while pid runs; a zombie counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


class NetnsHosts:
    """Hosts h1..hN made by scripts/netns-cluster.sh. Not thread-safe; one
    set of hosts exists on a machine at a time (the script's names are fixed)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.hosts = [f"h{i}" for i in range(1, count + 1)]
        self.is_up = False

    def _script(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
        return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def up(self) -> str:
        """Makes the hosts; NetnsUnavailable (with the reason) where this
        machine cannot; RuntimeError when a step fails."""
        for tool in ("ip", "unshare", "tc"):
            if shutil.which(tool) is None:
                raise NetnsUnavailable(f"'{tool}' is not installed (iproute2, util-linux)")
        proc = self._script("up", str(self.count))
        if proc.returncode in (_EXIT_NOT_ROOT, _EXIT_NO_NETNS):
            raise NetnsUnavailable(proc.stderr.strip())
        if proc.returncode != 0:
            raise RuntimeError(f"netns-cluster.sh up {self.count} failed ({proc.returncode}):\n"
                               f"{proc.stdout}{proc.stderr}")
        self.is_up = True
        return proc.stdout

    def down(self) -> None:
        proc = self._script("down")
        self.is_up = False
        if proc.returncode != 0:
            raise RuntimeError(f"netns-cluster.sh down failed ({proc.returncode}):\n"
                               f"{proc.stdout}{proc.stderr}")

    def _checked(self, *args: str) -> None:
        proc = self._script(*args)
        if proc.returncode != 0:
            raise RuntimeError(f"netns-cluster.sh {' '.join(args)} failed ({proc.returncode}):\n"
                               f"{proc.stdout}{proc.stderr}")

    def cut(self, host: str) -> None:
        self._checked("cut", host)

    def heal(self, host: str) -> None:
        self._checked("heal", host)

    def shape(self, host: str, rate: str) -> None:
        self._checked("shape", host, rate)

    def unshape(self, host: str) -> None:
        self._checked("unshape", host)

    def command(self, host: str, argv: Iterable[str]) -> list[str]:
        """The argv that runs ``argv`` inside ``host`` (same pid: the script execs)."""
        return [str(SCRIPT), "exec", host, *argv]

    def netns_inodes(self) -> dict[int, str]:
        """{inode of the host's network namespace: host}."""
        found = {}
        for host in self.hosts:
            try:
                found[os.stat(f"/run/netns/{HOST_NS_PREFIX}{host}").st_ino] = host
            except FileNotFoundError:
                pass
        return found

    def processes(self) -> list[tuple[int, str, str]]:
        """(pid, host, command line) of every live process inside the hosts."""
        inodes = self.netns_inodes()
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            try:
                ino = os.stat(f"/proc/{pid}/ns/net").st_ino
            except OSError:
                continue
            if ino in inodes and _alive(pid):
                found.append((pid, inodes[ino], _cmdline(pid)))
        return found

    def tx_bytes(self, host: str) -> int:
        """Bytes the host has sent on its link (eth0's counter)."""
        out = subprocess.run(["ip", "-j", "-s", "-n", f"{HOST_NS_PREFIX}{host}", "link", "show",
                              "dev", "eth0"], capture_output=True, text=True, check=True,
                             timeout=10).stdout
        return int(json.loads(out)[0]["stats64"]["tx"]["bytes"])


class DriverProcess:
    """A driver script running inside a host, read line by line: the driver
    prints one JSON object per line as it reaches each phase. stdin stays
    open so a driver may block on it until the test lets it finish."""

    def __init__(self, proc: subprocess.Popen, stderr_path: Path, label: str) -> None:
        self.proc = proc
        self.stderr_path = stderr_path
        self.label = label
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def next_json(self, timeout: float) -> dict[str, Any]:
        """The next JSON object the driver prints; ClusterError when it exits
        or stays silent for ``timeout`` s first."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._queue.get(timeout=max(left, 0.0)) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                raise ClusterError(f"{self.label}: no JSON line within {timeout:g} s\n"
                                   f"{self.describe()}") from None
            if line is None:
                self._queue.put(None)  # later calls see the end too
                raise ClusterError(f"{self.label}: exited before printing the next JSON line\n"
                                   f"{self.describe()}")
            self.lines.append(line)
            if line.startswith("{"):
                return json.loads(line)

    def wait_line(self, text: str, timeout: float) -> str:
        """The first line (JSON or not) the driver printed that contains
        ``text``, among those already read (next_json reads past them) and
        those to come; ClusterError when it exits or ``timeout`` s pass
        first."""
        for line in self.lines:
            if text in line:
                return line
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                raise ClusterError(f"{self.label}: no line with {text!r} within {timeout:g} s\n"
                                   f"{self.describe()}") from None
            if line is None:
                self._queue.put(None)
                raise ClusterError(f"{self.label}: exited before printing {text!r}\n"
                                   f"{self.describe()}")
            self.lines.append(line)
            if text in line:
                return line

    def finish(self, timeout: float) -> int:
        """Closes the driver's stdin and waits for it; kills it after timeout.
        Returns its exit status (negative: killed by that signal)."""
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return self.proc.returncode

    def describe(self) -> str:
        try:
            err = self.stderr_path.read_text(errors="replace")[-4000:]
        except OSError:
            err = "(no stderr file)"
        out = "\n".join(self.lines[-40:])
        return f"stdout so far:\n{out}\nstderr:\n{err}"


class FerryCluster:
    """A ferry cluster on namespace hosts: the head on the first host, a node
    on each other host. ``resources`` maps a host to its custom resources,
    ``env`` adds environment variables to every daemon (and so to every
    worker) and driver. Not thread-safe."""

    def __init__(self, hosts: NetnsHosts, log_dir: Path, *, num_cpus: float = 4,
                 resources: dict[str, dict[str, float]] | None = None,
                 env: dict[str, str] | None = None, head_port: int = HEAD_PORT,
                 python: str = sys.executable,
                 start_args: dict[str, list[str]] | None = None) -> None:
        self.hosts = hosts
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.num_cpus = num_cpus
        self.resources = resources or {}
        self.env = dict(env or {})
        self.python = python
        self.start_args = start_args or {}  # more `ferry start` flags, per host
        self.head = hosts.hosts[0]
        self.address = f"{host_ip(self.head)}:{head_port}"
        self.head_port = head_port
        self.token = ""
        self.running = False
        self._shm_before: set[str] = set()
        self._seq = 0

    # --- environment and logs -------------------------------------------------

    def process_env(self, extra: dict[str, str | None] | None = None) -> dict[str, str]:
        """This process's environment without any FERRY_* variable, plus the
        cluster's ``env`` and ``extra`` (a None value removes a variable)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
        paths = [str(CLUSTER_TESTS_DIR), str(TESTS_DIR), str(PYTHON_DIR)]
        env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in [os.environ.get("PYTHONPATH")] if p])
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.env)
        for key, value in (extra or {}).items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def driver_env(self, extra: dict[str, str | None] | None = None) -> dict[str, str]:
        hosts = {h: host_ip(h) for h in self.hosts.hosts}
        base: dict[str, str | None] = {"FERRY_ADDRESS": self.address, "FERRY_TOKEN": self.token,
                                       "FERRY_TEST_HOSTS": json.dumps(hosts)}
        base.update(extra or {})
        return self.process_env(base)

    def _next_path(self, stem: str, suffix: str) -> Path:
        self._seq += 1
        return self.log_dir / f"{self._seq:03d}-{stem}{suffix}"

    def logs_tail(self, lines: int = 30) -> str:
        """The end of every node log of every host, for failure messages."""
        parts = []
        for host in self.hosts.hosts:
            for path in sorted((host_temp_dir(host) / "logs").glob("*.log")):
                try:
                    text = path.read_text(errors="replace").splitlines()[-lines:]
                except OSError as e:
                    text = [f"(cannot read: {e})"]
                parts.append(f"--- {host}: {path}\n" + "\n".join(text))
        return "\n".join(parts) or "(no node logs)"

    # --- ferry start / stop ---------------------------------------------------

    def ferry_command(self, host: str, args: list[str], timeout: float,
               extra_env: dict[str, str | None] | None = None) -> str:
        """Runs ``python -m ferry ARGS`` inside ``host``; its output. Output
        goes to a file, not a pipe: the daemon that `ferry start` leaves
        behind must not hold our pipe open."""
        log = self._next_path(f"ferry-{args[0]}-{host}", ".log")
        with open(log, "w") as out:
            try:
                proc = subprocess.run(self.hosts.command(host, [self.python, "-m", "ferry", *args]),
                                      stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      env=self.process_env(extra_env), timeout=timeout)
                rc: int | str = proc.returncode
            except subprocess.TimeoutExpired:
                rc = f"timeout after {timeout:g} s"
        text = log.read_text(errors="replace")
        if rc != 0:
            raise ClusterError(f"`ferry {' '.join(args)}` on {host} failed ({rc}):\n{text}\n"
                               f"node logs:\n{self.logs_tail()}")
        return text

    def _start_args(self, host: str) -> list[str]:
        args = ["--node-ip-address", host_ip(host), "--num-cpus", f"{self.num_cpus:g}",
                "--temp-dir", str(host_temp_dir(host))]
        if host in self.resources:
            args += ["--resources", json.dumps(self.resources[host])]
        return args + self.start_args.get(host, [])

    def start(self) -> None:
        """Starts every host's node and waits until the head lists them all alive."""
        left = self.hosts.processes()
        if left:
            raise ClusterError(f"processes are still running in the hosts: {left}")
        for host in self.hosts.hosts:
            d = host_temp_dir(host)
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(mode=0o700, parents=True)
        self._shm_before = shm_entries()
        self.running = True
        self.ferry_command(self.head, ["start", "--head", "--port", str(self.head_port),
                                *self._start_args(self.head)], START_TIMEOUT_S)
        cluster_file = host_temp_dir(self.head) / "ferry_current_cluster"
        info = json.loads(cluster_file.read_text())
        if info.get("address") != self.address:
            raise ClusterError(f"{cluster_file} names {info.get('address')}, not {self.address}")
        self.token = info["token"]
        for host in self.hosts.hosts[1:]:
            self.ferry_command(host, ["start", "--address", self.address, *self._start_args(host)],
                        START_TIMEOUT_S, extra_env={"FERRY_TOKEN": self.token})
        self.wait_alive(len(self.hosts.hosts), START_TIMEOUT_S)

    def wait_alive(self, count: int, timeout: float) -> list[str]:
        """Waits (in a driver on the head host) until ``count`` nodes are alive;
        returns the alive nodes' addresses."""
        out = self.driver_json(self.head, f"""
            from driver_lib import alive_nodes, connect, emit, wait_for
            connect()
            wait_for(lambda: len(alive_nodes()) >= {count}, {timeout})
            emit({{"alive": [n["NodeManagerAddress"] for n in alive_nodes()]}})
            """, timeout=timeout + 60)
        if len(out["alive"]) < count:
            raise ClusterError(f"only {out['alive']} alive after {timeout:g} s, want {count}\n"
                               f"{self.logs_tail()}")
        return out["alive"]

    def node_daemon_pids(self, host: str) -> list[int]:
        """Pids of the node daemons that ``host``'s ready files name."""
        pids = []
        for path in sorted(host_temp_dir(host).glob("node-*.json")):
            try:
                pids.append(int(json.loads(path.read_text())["pid"]))
            except (OSError, ValueError, KeyError):
                continue
        return pids

    def stop(self) -> None:
        """`ferry stop` on every host (the head's last), then checks that no
        process is left in the hosts and no new ferry file in /dev/shm.
        Leftovers are reported in a ClusterError and then removed (SIGKILL
        by pid, unlink), so that the next cluster starts clean."""
        if not self.running:
            return
        self.running = False
        errors = []
        for host in reversed(self.hosts.hosts):
            try:
                self.ferry_command(host, ["stop", "--temp-dir", str(host_temp_dir(host))], STOP_TIMEOUT_S)
            except ClusterError as e:
                errors.append(str(e))
        left = [] if wait_for(lambda: not self.hosts.processes(), EXIT_DEADLINE_S) \
            else self.hosts.processes()
        if left:
            ferry_left = [p for p in left if any(m in p[2] for m in FERRY_PROCESS_MARKERS)]
            errors.append(f"{len(left)} process(es) left in the hosts {EXIT_DEADLINE_S:g} s after "
                          f"`ferry stop` ({len(ferry_left)} of them ferry's): "
                          + "; ".join(f"pid {p} on {h}: {c}" for p, h, c in left))
            for pid, _, _ in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            wait_for(lambda: not self.hosts.processes(), EXIT_DEADLINE_S)
        new_shm = sorted(e for e in shm_entries() - self._shm_before if "ferry" in e.lower())
        if new_shm:
            errors.append(f"ferry files left in /dev/shm: {new_shm}")
            for name in new_shm:
                try:
                    os.unlink(os.path.join("/dev/shm", name))
                except OSError:
                    pass
        if errors:
            raise ClusterError("\n".join(errors) + f"\nnode logs:\n{self.logs_tail()}")

    # --- drivers --------------------------------------------------------------

    def http_get(self, host: str, url: str, timeout: float = 30.0) -> str:
        """The body of GET ``url`` from inside ``host`` (its own loopback)."""
        code = ("import sys, urllib.request\n"
                "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=20).read().decode())")
        proc = subprocess.run(self.hosts.command(host, [self.python, "-c", code, url]),
                              capture_output=True, text=True, timeout=timeout,
                              env=self.process_env())
        if proc.returncode != 0:
            raise ClusterError(f"GET {url} on {host} failed:\n{proc.stderr}")
        return proc.stdout

    def _script_path(self, code: str) -> Path:
        path = self._next_path("driver", ".py")
        path.write_text(textwrap.dedent(code))
        return path

    def run_driver(self, host: str, code: str, timeout: float = DRIVER_TIMEOUT_S,
                   env: dict[str, str | None] | None = None) -> subprocess.CompletedProcess:
        """Runs ``code`` (dedented) as a driver script inside ``host`` with
        FERRY_ADDRESS, FERRY_TOKEN and FERRY_TEST_HOSTS set (``env``
        overrides; None removes). Returns the completed process (text);
        TimeoutExpired after ``timeout`` s (the driver is killed)."""
        path = self._script_path(code)
        return subprocess.run(self.hosts.command(host, [self.python, str(path)]),
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, cwd=str(self.log_dir),
                              env=self.driver_env(env))

    def describe_run(self, host: str, proc: subprocess.CompletedProcess) -> str:
        return (f"driver on {host}: rc={proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\n"
                f"stderr:\n{proc.stderr[-6000:]}\nnode logs:\n{self.logs_tail()}")

    def driver_json(self, host: str, code: str, timeout: float = DRIVER_TIMEOUT_S,
                    env: dict[str, str | None] | None = None) -> dict[str, Any]:
        """run_driver, which must exit 0; the JSON object on its last stdout line."""
        try:
            proc = self.run_driver(host, code, timeout, env)
        except subprocess.TimeoutExpired as e:
            raise ClusterError(f"driver on {host} ran past {timeout:g} s\nstdout:\n{e.stdout}\n"
                               f"stderr:\n{e.stderr}\nnode logs:\n{self.logs_tail()}") from None
        if proc.returncode != 0:
            raise ClusterError(self.describe_run(host, proc))
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        if not lines:
            raise ClusterError("driver printed no JSON line\n" + self.describe_run(host, proc))
        return json.loads(lines[-1])

    def popen_driver(self, host: str, code: str,
                     env: dict[str, str | None] | None = None) -> DriverProcess:
        """Starts ``code`` as a driver inside ``host`` and returns at once;
        read its JSON lines with ``next_json``; ``finish`` it."""
        path = self._script_path(code)
        stderr_path = path.with_suffix(".stderr")
        with open(stderr_path, "w") as err:
            proc = subprocess.Popen(self.hosts.command(host, [self.python, str(path)]),
                                    stdout=subprocess.PIPE, stderr=err, stdin=subprocess.PIPE,
                                    text=True, cwd=str(self.log_dir), env=self.driver_env(env))
        return DriverProcess(proc, stderr_path, f"driver {path.name} on {host}")
