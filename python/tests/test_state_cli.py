"""`ferry status`, `ferry list actors|nodes|objects|transfers|groups` and
`ferry memory` against a running embedded session: a driver started ferry on
its own (no cluster), and the command, run from another process on the
host, finds it through the session file, reads the head's tables and asks
every process what it holds. Also the parts that need no session: the
table and status layouts, and what the command says when nothing runs."""
import contextlib
import json
import os
import subprocess
import sys

import pytest

from conftest import write_script
from ferry.scripts import state
from ferry._private.inventory import Inventory

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


OBJECTS_DRIVER = """
import sys

import torch

import ferry
from ferry.experimental.collective import create_collective_group

ferry.init(num_cpus=4)


@ferry.remote
class Holder:
    def __init__(self):
        self.kept = None

    def keep(self, refs):
        self.kept = refs  # borrows what the list holds
        return len(refs)

    @ferry.method(tensor_transport="gloo")
    def make(self, n):
        return torch.ones(n)

    def total(self, t):
        return float(t.sum())


maker = Holder.options(name="maker").remote()
taker = Holder.options(name="taker").remote()
create_collective_group([maker, taker], backend="torch_gloo", name="pair")
rdt = maker.make.remote(25_000)  # 100,000 bytes kept in maker
assert ferry.get(taker.total.remote(rdt), timeout=60) == 25_000.0
small = ferry.put(b"s" * 1000)
big = ferry.put(b"b" * 300_000)  # in shared memory
assert ferry.get(taker.keep.remote([big]), timeout=60) == 1
print("READY", flush=True)
sys.stdin.read()  # until the test has looked
ferry.shutdown()
"""


@contextlib.contextmanager
def running_session(tmp_path, driver=DRIVER):
    """A driver running `driver` (by default 4 actors, one killed, and a
    pooled task worker), waiting until the block ends: (its temp dir, its
    pid)."""
    temp = tmp_path / "ferry"
    path = write_script(tmp_path, driver, "state_driver.py")
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


@pytest.fixture
def objects_session(tmp_path):
    with running_session(tmp_path, OBJECTS_DRIVER) as running:
        yield running


def _json(temp, *args):
    out = _ferry(temp, *args, "--format", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_list_objects_shows_each_object_its_owner_and_who_keeps_it(objects_session):
    temp, driver_pid = objects_session
    rows = {r["kind"]: r for r in _json(temp, "list", "objects")}
    assert sorted(rows) == ["inline", "rdt", "shm"], rows
    assert all(r["owner"] == f"driver pid={driver_pid}" for r in rows.values())
    rdt = rows["rdt"]
    assert rdt["transport"] == "gloo" and rdt["size"] == 100_000
    assert len(rdt["tensors_in"]) == 1 and rdt["tensors_in"][0].startswith("Holder pid=")
    assert rows["inline"]["local_refs"] == 1 and rows["inline"]["size"] >= 1000
    big = rows["shm"]
    assert big["size"] >= 300_000 and big["local_refs"] == 1
    assert len(big["borrowers"]) == 1 and big["borrowers"][0].startswith("Holder pid="), big
    assert all(r["age_s"] > 0 for r in rows.values())
    table = _ferry(temp, "list", "objects").stdout.splitlines()
    assert table[0].split()[:5] == ["OBJECT_ID", "OWNER", "NODE", "KIND", "SIZE"]
    assert len(table) == 4


def test_list_transfers_and_groups_show_the_rdt_transfer_and_the_pair(objects_session):
    temp, _ = objects_session
    holders = {a["name"]: f"Holder pid={a['pid']}" for a in _json(temp, "list", "actors")}
    transfers = _json(temp, "list", "transfers")
    assert len(transfers) == 1, json.dumps(transfers, indent=1)
    t = transfers[0]
    assert (t["from"], t["to"]) == (holders["maker"], holders["taker"])
    assert t["transport"] == "gloo" and t["path"] in ("gloo", "shm") and t["size"] == 100_000
    assert t["micros"] > 0 and t["throughput_mb_s"] > 0 and t["error"] == ""
    groups = _json(temp, "list", "groups")
    assert [(g["name"], g["backend"], g["world_size"], g["state"]) for g in groups] == [
        ("pair", "torch_gloo", 2, "ALIVE")]
    assert groups[0]["members"] == [holders["maker"], holders["taker"]]  # by rank
    status = _ferry(temp, "status").stdout
    assert "Collective groups: 1" in status and "pair  torch_gloo  2 members  ALIVE" in status
    assert "tensor store 97.7 KiB" in status, status


def test_memory_groups_objects_by_owner_with_why_and_flags_old_ones(objects_session):
    temp, driver_pid = objects_session
    report = _json(temp, "memory", "--leak-age", "0")
    [owner] = report["owners"]
    assert owner["owner"] == f"driver pid={driver_pid}" and len(owner["objects"]) == 3
    why = {o["kind"]: o["why"] for o in owner["objects"]}
    assert why["inline"] == "local ref x1"
    assert why["shm"].startswith("local ref x1; borrowed by Holder pid="), why
    assert len(report["possible_leaks"]) == 3  # every object is older than 0 s
    assert [t["bytes"] for t in report["tensors_held"]] == [100_000]
    [node] = report["nodes"].values()
    assert node["tensor_store_bytes"] == 100_000 and node["object_store_bytes"] >= 300_000
    assert _json(temp, "memory")["possible_leaks"] == []  # none is 300 s old
    text = _ferry(temp, "memory", "--leak-age", "0").stdout
    assert f"driver pid={driver_pid} (node 127.0.0.1): 3 objects" in text, text
    assert "POSSIBLE LEAK" in text and "Possible leaks (alive over 0.0s): 3" in text


def test_timeline_writes_a_chrome_trace_of_every_process(objects_session, tmp_path):
    temp, driver_pid = objects_session
    path = tmp_path / "trace.json"
    out = _ferry(temp, "timeline", "-o", str(path))
    assert out.returncode == 0, out.stderr
    assert f"processes of ferry session" in out.stdout and str(path) in out.stdout
    events = json.loads(path.read_text())["traceEvents"]
    rows = sorted(e["args"]["name"].split(" (node")[0] for e in events
                  if e["name"] == "process_name")
    holders = {a["name"]: f"Holder pid={a['pid']}" for a in _json(temp, "list", "actors")}
    assert rows == sorted([f"driver pid={driver_pid}", holders["maker"], holders["taker"]])
    names = {e["name"] for e in events if e["ph"] == "X"}
    assert {"make", "total", "keep", "submit make", "submit total"} <= names, names


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
    inv = _inventory()
    tables = state.Tables(nodes, actors, inv)
    text = state.status_text(state.Target("x", "t", "cluster at 10.0.0.1:6379"), tables)
    assert text.splitlines() == [
        "ferry cluster at 10.0.0.1:6379",
        "Nodes: 1 alive, 1 dead",
        "  cdcdcdcdcdcd  10.0.0.1        head  CPU 0/2  actors 0  object store 0 B  "
        "tensor store 0 B  DEAD: missed heartbeats",
        "  abababababab  10.0.0.2              CPU 1.5/4  special 0/1  actors 2  "
        "object store 2.0 KiB  tensor store 1.0 MiB",
        "Actors: 1 ALIVE, 0 PENDING, 0 RESTARTING, 0 DEAD",
        "Task workers (pooled, for remote functions): 1",
        "Collective groups: 1",
        "  g  gloo  2 members  DESTROYED: peer died",
        "(no answer: task worker pid=9: exited)"]
    table = state.table_text("actors", state.list_rows("actors", tables)).splitlines()
    assert table[0] == "ACTOR_ID                          CLASS              NAME  STATE  NODE" \
                       "      PID  RESTARTS"
    assert table[1].split() == ["1" * 32, "A", "-", "ALIVE", "10.0.0.2", "7", "1"]


def _process(kind, pid, worker, actor="", cls="", address=None):
    return {"kind": kind, "worker_id": worker, "address": address or f"unix:@w{pid}",
            "pid": pid, "node_id": "ab" * 16, "node_ip": "10.0.0.2", "actor_id": actor,
            "class_name": cls}


def _state(**fields):
    base = {"owned": [], "num_owned": 0, "borrowed": [], "stored_tensors": [], "transfers": [],
            "groups": [], "created_groups": [], "object_store_bytes": 0,
            "tensor_store_bytes": 0}
    return dict(base, **fields)


def _inventory():
    """A driver owning one RDT object whose tensors actor A (rank 0) keeps,
    borrowed by actor B (rank 1), which pulled it from A; B destroyed their
    group; a task worker that exited while being asked."""
    obj = {"object_id": "0" * 32, "kind": "rdt", "size": 1 << 20, "transport": "gloo",
           "producer_address": "unix:@w7", "local_refs": 1, "submitted_task_refs": 2,
           "borrowers": ["b" * 32], "pinned": False, "age_s": 42.0}
    processes = [_process("DRIVER", 5, "d" * 32),
                 _process("ACTOR", 7, "a" * 32, "1" * 32, "A", "unix:@w7,tcp:10.0.0.2:9"),
                 _process("ACTOR", 8, "b" * 32, "2" * 32, "B"),
                 _process("TASK_WORKER", 9, "c" * 32)]
    group = {"name": "g", "backend": "gloo", "rank": 0, "world_size": 2, "destroyed": "",
             "members": []}
    states = {
        "d" * 32: _state(owned=[obj], num_owned=1, object_store_bytes=2048,
                         created_groups=[dict(group, members=["1" * 32, "2" * 32])]),
        "a" * 32: _state(stored_tensors=[{"object_id": "0" * 32, "num_tensors": 1,
                                          "size": 1 << 20, "device": "cpu"}],
                         tensor_store_bytes=1 << 20, groups=[group]),
        "b" * 32: _state(groups=[dict(group, rank=1, destroyed="peer died")],
                         transfers=[{"object_id": "0" * 32, "transport": "shm",
                                     "direction": "recv", "peer": "unix:@w7", "size": 1 << 20,
                                     "micros": 1000, "end_time_s": 1.0, "pooled": True,
                                     "reason": "", "error": ""}]),
    }
    return Inventory(processes, states, ["task worker pid=9: exited"],
                     {"ab" * 16: "10.0.0.2"})


def test_inventory_joins_what_the_processes_say():
    inv = _inventory()
    [obj] = inv.object_rows()
    assert obj["owner"] == "driver pid=5" and obj["borrowers"] == ["B pid=8"]
    assert obj["tensors_in"] == ["A pid=7"] and obj["task_refs"] == 2
    [t] = inv.transfer_rows()
    assert (t["from"], t["to"], t["transport"], t["path"]) == ("A pid=7", "B pid=8", "gloo", "shm")
    assert t["throughput_mb_s"] == pytest.approx(1048.6, abs=0.1)
    [g] = inv.group_rows()
    assert g["members"] == ["A pid=7", "B pid=8"] and g["state"] == "DESTROYED: peer died"
    assert inv.bytes_per_node() == {"ab" * 16: (2048, 1 << 20)}
    table = state.table_text("transfers", inv.transfer_rows()).splitlines()
    assert table[1].split() == ["0" * 32, "A", "pid=7", "B", "pid=8", "gloo", "shm", "1.0",
                                "MiB", "1.00", "ms", "1048.6", "-"]
