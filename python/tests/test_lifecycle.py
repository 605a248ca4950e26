"""init / shutdown / auto-init and process hygiene.

These tests own the runtime's lifecycle, so none uses the module-scoped session.
"""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import (EXIT_DEADLINE, GET_TIMEOUT, all_gone, kill_leftovers, pid_alive,
                      run_script, shm_entries, wait_for, write_script)


@pytest.fixture(autouse=True)
def _no_runtime_before_or_after():
    import ferry
    if ferry.is_initialized():
        ferry.shutdown()
    yield
    if ferry.is_initialized():
        ferry.shutdown()


def _new_shm_leftovers(before, started_at):
    """Entries in /dev/shm that appeared during the test and are still there."""
    left = []
    for name in shm_entries() - before:
        try:
            mtime = os.stat(os.path.join("/dev/shm", name)).st_mtime
        except FileNotFoundError:
            continue
        # multiprocessing's POSIX semaphores (sem.*) belong to other libraries.
        if mtime >= started_at - 1 and (not name.startswith("sem.") or "ferry" in name.lower()):
            left.append(name)
    return left


def test_is_initialized_tracks_init_and_shutdown():
    import ferry
    assert ferry.is_initialized() is False
    ferry.init()
    assert ferry.is_initialized() is True
    ferry.shutdown()
    assert ferry.is_initialized() is False
    ferry.shutdown()  # a second shutdown is harmless
    assert ferry.is_initialized() is False


def test_shutdown_leaves_no_worker_process_and_no_shm(actors):
    import numpy as np
    import ferry
    before = shm_entries()
    started_at = time.time()
    ferry.init()
    pids = []
    try:
        handles = [actors.Echo.remote() for _ in range(3)]
        pids = ferry.get([h.pid.remote() for h in handles], timeout=GET_TIMEOUT)
        assert len(set(pids)) == 3 and os.getpid() not in pids
        # Make large (shared-memory) objects in both directions before shutting down.
        big = np.ones(4_000_000)
        kept_put = ferry.put(big)
        kept_ret = handles[0].echo_array.remote(big)
        assert ferry.get(kept_ret, timeout=GET_TIMEOUT).shape == big.shape
        assert ferry.get(handles[1].sum.remote(kept_put), timeout=GET_TIMEOUT) == 4_000_000
        ferry.shutdown()
        assert ferry.is_initialized() is False
        assert wait_for(lambda: all_gone(pids), EXIT_DEADLINE), \
            f"workers still alive after shutdown: {[p for p in pids if pid_alive(p)]}"
        clean = wait_for(lambda: not _new_shm_leftovers(before, started_at), EXIT_DEADLINE)
        assert clean, f"/dev/shm entries left after shutdown: {_new_shm_leftovers(before, started_at)}"
    finally:
        kill_leftovers(pids)


def test_init_again_after_shutdown(actors):
    import ferry
    ferry.init()
    c = actors.Counter.remote(1)
    assert ferry.get(c.incr.remote(), timeout=GET_TIMEOUT) == 2
    ferry.shutdown()
    ferry.init()
    c = actors.Counter.remote(10)
    assert ferry.get(c.incr.remote(), timeout=GET_TIMEOUT) == 11
    ferry.shutdown()


AUTO_INIT_SCRIPT = """
import os
import ferry

@ferry.remote
class Adder:
    def __init__(self, base):
        self.base = base

    def add(self, x):
        return self.base + x

    def pid(self):
        return os.getpid()

print("before", ferry.is_initialized(), flush=True)
a = Adder.remote(40)                      # no ferry.init(): the first .remote() starts ferry
print("after", ferry.is_initialized(), flush=True)
print("result", ferry.get(a.add.remote(2), timeout=60), flush=True)
print("worker", ferry.get(a.pid.remote(), timeout=60), flush=True)
print("driver", os.getpid(), flush=True)
# no shutdown: leaving the script must end the runtime and its workers
"""


def test_auto_init_in_a_fresh_script(tmp_path):
    proc = run_script(tmp_path, AUTO_INIT_SCRIPT, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    assert lines.get("before") == "False", proc.stdout
    assert lines.get("after") == "True", proc.stdout
    assert lines.get("result") == "42", proc.stdout
    worker = int(lines["worker"])
    assert worker != int(lines["driver"])
    try:
        assert wait_for(lambda: not pid_alive(worker), EXIT_DEADLINE), \
            f"worker {worker} outlived its driver script"
    finally:
        kill_leftovers([worker])


ORPHAN_SCRIPT = """
import os
import sys
import ferry

@ferry.remote
class Worker:
    def pid(self):
        return os.getpid()

ferry.init()
handles = [Worker.remote() for _ in range(3)]
pids = ferry.get([h.pid.remote() for h in handles], timeout=60)
print("PIDS " + " ".join(str(p) for p in pids), flush=True)
sys.stdin.read()  # stay alive until the test SIGKILLs this driver
"""


def _read_line_with_prefix(proc, prefix, timeout):
    """Reads proc.stdout lines until one starts with prefix; None after timeout."""
    found = []

    def reader():
        for line in proc.stdout:
            if line.startswith(prefix):
                found.append(line)
                return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(timeout)
    return found[0] if found else None


def test_no_orphans_after_driver_is_sigkilled(tmp_path):
    path = write_script(tmp_path, ORPHAN_SCRIPT)
    stderr_path = tmp_path / "driver.stderr"
    with open(stderr_path, "w") as stderr:
        proc = subprocess.Popen([sys.executable, str(path)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=stderr, text=True,
                                cwd=str(tmp_path))
    pids = []
    try:
        line = _read_line_with_prefix(proc, "PIDS ", GET_TIMEOUT)
        if line is None:
            proc.kill()
            proc.wait(timeout=30)
            pytest.fail(f"driver never printed its worker pids; stderr:\n{stderr_path.read_text()}")
        pids = [int(p) for p in line.split()[1:]]
        assert len(pids) == 3 and proc.pid not in pids
        assert all(pid_alive(p) for p in pids)

        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        assert wait_for(lambda: all_gone(pids), EXIT_DEADLINE), \
            f"orphaned workers after driver SIGKILL: {[p for p in pids if pid_alive(p)]}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        kill_leftovers(pids)
