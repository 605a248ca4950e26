"""`ferry status` and `ferry list actors|nodes` against a running embedded
session: a driver started ferry on its own (no cluster), and the command,
run from another process on the host, finds it through the session file
and reads the head's tables. Also the parts that need no session: the
table and status layouts, and what the command says when nothing runs."""
import contextlib
import json
import os
import subprocess
import sys

import pytest

from conftest import write_script
from ferry.scripts import state

DRIVER = """
import sys

import ferry

ferry.init(num_cpus=4)


@ferry.remote
class Keeper:
    def ping(self):
        return "pong"


@ferry.remote
class Doomed:
    def ping(self):
        return "pong"


@ferry.remote
def square(x):
    return x * x


keeper = Keeper.options(name="keeper", num_cpus=1).remote()  # others hold none (Ray's default)
others = [Keeper.remote() for _ in range(2)]
doomed = Doomed.remote()
ferry.get([keeper.ping.remote(), doomed.ping.remote()] + [o.ping.remote() for o in others],
          timeout=60)
ferry.kill(doomed)
assert ferry.get(square.remote(7), timeout=60) == 49
print("READY", flush=True)
sys.stdin.read()  # until the test has looked
ferry.shutdown()
"""


def _ferry(temp, *args):
    env = dict(os.environ, FERRY_TEMP_DIR=str(temp))
    env.pop("FERRY_ADDRESS", None)
    return subprocess.run([sys.executable, "-m", "ferry", *args], capture_output=True, text=True,
                          timeout=60, env=env, stdin=subprocess.DEVNULL)


@contextlib.contextmanager
def running_session(tmp_path):
    """A driver with 4 actors (one killed) and a pooled task worker, waiting
    until the block ends: (its temp dir, its pid)."""
    temp = tmp_path / "ferry"
    path = write_script(tmp_path, DRIVER, "state_driver.py")
    proc = subprocess.Popen([sys.executable, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, FERRY_TEMP_DIR=str(temp)), cwd=str(tmp_path))
    try:
        line = proc.stdout.readline()
        assert line == "READY\n", line + proc.stderr.read()
        yield temp, proc.pid
    finally:
        proc.stdin.close()
        assert proc.wait(60) == 0, proc.stderr.read()


@pytest.fixture
def session(tmp_path):
    with running_session(tmp_path) as running:
        yield running


def test_list_actors_shows_every_actor_with_its_state_node_and_pid(session):
    temp, driver_pid = session
    out = _ferry(temp, "list", "actors", "--format", "json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    user = [r for r in rows if r["class_name"] != state.TASK_WORKER_CLASS]
    assert sorted((r["class_name"], r["name"], r["state"]) for r in user) == [
        ("Doomed", "", "DEAD"), ("Keeper", "", "ALIVE"), ("Keeper", "", "ALIVE"),
        ("Keeper", "keeper", "ALIVE")]
    for r in user:
        assert r["pid"] > 0 and r["pid"] != driver_pid and len(r["actor_id"]) == 32
        assert r["node_ip"] == "127.0.0.1"
    assert "killed by ferry.kill()" in next(
        r for r in user if r["class_name"] == "Doomed")["death_cause"]
    assert any(r["class_name"] == state.TASK_WORKER_CLASS for r in rows), "the pooled worker"
    # the table: a header and one line per actor
    table = _ferry(temp, "list", "actors")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ACTOR_ID", "CLASS", "NAME", "STATE", "NODE", "PID", "RESTARTS"]
    assert len(lines) == 1 + len(rows)
    assert any(line.split()[1:4] == ["Keeper", "keeper", "ALIVE"] for line in lines[1:])


def test_status_shows_the_node_resources_in_use_and_actors_by_state(session):
    temp, driver_pid = session
    out = _ferry(temp, "status")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert f"ferry session " in text and f"(driver pid {driver_pid})" in text, text
    assert "Nodes: 1 alive, 0 dead" in text
    assert "CPU 1/4" in text, text  # only "keeper" holds a CPU while it runs
    assert "Actors: 3 ALIVE, 0 PENDING, 0 RESTARTING, 1 DEAD" in text, text
    nodes = json.loads(_ferry(temp, "list", "nodes", "--format", "json").stdout)
    assert len(nodes) == 1 and nodes[0]["alive"] and nodes[0]["head"]
    assert nodes[0]["total"]["CPU"] == 4.0 and nodes[0]["available"]["CPU"] == 3.0


def test_the_session_file_is_private_and_gone_when_the_driver_exits(tmp_path):
    with running_session(tmp_path) as (temp, driver_pid):
        path = temp / "session_latest" / "session.json"
        assert path.stat().st_mode & 0o777 == 0o600  # it holds the token
        assert path.parent.stat().st_mode & 0o777 == 0o700
        assert json.loads(path.read_text())["pid"] == driver_pid
    assert not (temp / "session_latest").exists()
    assert not list(temp.glob("session-*/session.json"))
    out = _ferry(temp, "status")
    assert out.returncode == 1 and "no running ferry found" in out.stderr


def test_nothing_running_is_a_clear_error(tmp_path):
    out = _ferry(tmp_path / "none", "status")
    assert out.returncode == 1
    assert "no running ferry found" in out.stderr and "ferry start --head" in out.stderr


def test_a_stale_session_file_of_a_dead_driver_is_ignored(tmp_path):
    temp = tmp_path / "ferry"
    session_dir = temp / "session-dead"
    session_dir.mkdir(parents=True)
    temp.chmod(0o700)
    (session_dir / "session.json").write_text(json.dumps(
        {"session": "dead", "address": "unix:@ferry-dead", "token": "t", "pid": 2 ** 22 + 7}))
    (temp / "session_latest").symlink_to("session-dead")
    with pytest.raises(state.NotFound, match="no running ferry found"):
        state.find_target(None, None, str(temp))


def test_table_and_status_layouts():
    nodes = [{"NodeID": "ab" * 16, "NodeManagerAddress": "10.0.0.2", "Alive": True,
              "IsHead": False, "Resources": {"CPU": 4.0, "special": 1.0},
              "AvailableResources": {"CPU": 2.5, "special": 1.0}, "NumActors": 2,
              "DeathCause": ""},
             {"NodeID": "cd" * 16, "NodeManagerAddress": "10.0.0.1", "Alive": False,
              "IsHead": True, "Resources": {"CPU": 2.0}, "AvailableResources": {"CPU": 2.0},
              "NumActors": 0, "DeathCause": "missed heartbeats"}]
    actors = [{"actor_id": "1" * 32, "class_name": "A", "name": "", "state": "ALIVE",
               "node_id": "ab" * 16, "node_ip": "", "pid": 7, "num_restarts": 1},
              {"actor_id": "2" * 32, "class_name": state.TASK_WORKER_CLASS, "name": "",
               "state": "ALIVE", "node_id": "ab" * 16, "node_ip": "10.0.0.2", "pid": 8,
               "num_restarts": 0}]
    text = state.status_text(state.Target("x", "t", "cluster at 10.0.0.1:6379"), nodes, actors)
    assert text.splitlines() == [
        "ferry cluster at 10.0.0.1:6379",
        "Nodes: 1 alive, 1 dead",
        "  cdcdcdcdcdcd  10.0.0.1        head  CPU 0/2  actors 0  DEAD: missed heartbeats",
        "  abababababab  10.0.0.2              CPU 1.5/4  special 0/1  actors 2",
        "Actors: 1 ALIVE, 0 PENDING, 0 RESTARTING, 0 DEAD",
        "Task workers (pooled, for remote functions): 1"]
    table = state.table_text("actors", state.list_rows("actors", nodes, actors)).splitlines()
    assert table[0] == "ACTOR_ID                          CLASS              NAME  STATE  NODE" \
                       "      PID  RESTARTS"
    assert table[1].split() == ["1" * 32, "A", "-", "ALIVE", "10.0.0.2", "7", "1"]
