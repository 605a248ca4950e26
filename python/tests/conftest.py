"""Shared fixtures and helpers for ferry's Python integration tests.

Every test here runs real worker processes. Rules kept throughout:

* nothing synchronizes by sleeping: tests poll a condition with a deadline
  (`wait_for`), and every blocking `ferry.get` carries a timeout so a bug shows
  up as a failure, not as a hung CI run;
* actor classes live in `ferry_test_actors.py`, imported through the `actors`
  fixture (not at module import) so the suite still collects while the
  package is being written;
* scripts that must run as a separate driver go through `run_script`, with
  `sys.executable`.
"""
import os
import subprocess
import sys
import textwrap

import pytest

from cluster import polling

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.dirname(TESTS_DIR)

# Worker processes unpickle test actor classes by reference
# (`ferry_test_actors.Counter`), so they must be able to import this folder.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (TESTS_DIR, PYTHON_DIR, os.environ.get("PYTHONPATH")) if p)

# Upper bound for any single blocking wait in the suite; generous for slow CI.
GET_TIMEOUT = float(os.environ.get("FERRY_TEST_GET_TIMEOUT", "60"))
# How long a process may take to disappear after kill / crash / shutdown.
EXIT_DEADLINE = float(os.environ.get("FERRY_TEST_EXIT_DEADLINE", "15"))


def wait_for(pred, timeout, interval=0.01):
    """Polls pred() until it is truthy or timeout seconds pass; returns its
    last value (cluster/polling.py, which the cluster drivers use too)."""
    return polling.wait_for(pred, timeout, interval)


def pid_alive(pid):
    """True while pid runs. A zombie (exited, not yet reaped) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            # The state follows the parenthesised command name, which may hold spaces.
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


def all_gone(pids):
    return not any(pid_alive(p) for p in pids)


def kill_leftovers(pids):
    """Cleanup after a failed test: SIGKILL processes this test caused to exist."""
    for p in pids:
        if pid_alive(p):
            try:
                os.kill(p, 9)
            except OSError:
                pass


def shm_entries():
    try:
        return set(os.listdir("/dev/shm"))
    except FileNotFoundError:
        return set()


def write_script(tmp_path, body, name="driver.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def run_fault_driver(tmp_path, body, args, transfer_timeout_s, env=None):
    """Runs body as a fresh driver with FERRY_TRANSFER_TIMEOUT_S and `env`
    set (and no FERRY_FAULT: the driver sets it per actor) and returns the JSON object it
    printed last. It must have reported its workers' pids under "pids"; they
    must all be gone soon after it exits, and /dev/shm must hold no new ferry
    file."""
    import json
    path = write_script(tmp_path, body)
    extra = env or {}
    env = dict(os.environ, FERRY_TRANSFER_TIMEOUT_S=str(transfer_timeout_s),
               PYTHONPATH=os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]))
    env.pop("FERRY_FAULT", None)
    env.update(extra)
    before = shm_entries()
    proc = subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True,
                          timeout=240, env=env, stdin=subprocess.DEVNULL, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    pids = out["pids"]
    try:
        assert wait_for(lambda: all_gone(pids), EXIT_DEADLINE), "worker processes outlived the driver"
    finally:
        kill_leftovers(pids)
    assert not {e for e in shm_entries() - before if "ferry" in e}
    return out


def run_script(tmp_path, body, timeout=120, name="driver.py"):
    """Runs body as a fresh driver (`sys.executable`), returns CompletedProcess (text)."""
    path = write_script(tmp_path, body, name)
    return subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, cwd=str(tmp_path))


def fresh_runtime(**init_options):
    """ferry, initialized anew with `init_options` (ferry.init's)."""
    import ferry
    if ferry.is_initialized():  # e.g. left by an auto-init elsewhere
        ferry.shutdown()
    ferry.init(**init_options)
    return ferry


@pytest.fixture
def ferry_session():
    """A runtime for one test: ferry.init() before, ferry.shutdown() after."""
    ferry = fresh_runtime()
    try:
        yield ferry
    finally:
        ferry.shutdown()


@pytest.fixture(scope="module")
def ferry_module_session():
    """One runtime shared by a test module (starting workers costs tens of ms each)."""
    ferry = fresh_runtime()
    try:
        yield ferry
    finally:
        ferry.shutdown()


@pytest.fixture(scope="session")
def actors():
    """The module of test actor classes (imported lazily, see the module docstring)."""
    import ferry_test_actors
    return ferry_test_actors
