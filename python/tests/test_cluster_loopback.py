"""Cluster mode on loopback, with real daemons: `ferry start --head`, a second
node joining it, a driver placing actors on both, `ferry stop`; and the
errors a driver gets, within seconds, when the address is wrong — nothing
listens there, something that is not a ferry head listens there, or the
token is wrong. (python/tests/cluster/ runs real multi-host clusters on
network namespaces; these run anywhere.)"""
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from conftest import EXIT_DEADLINE, wait_for

FERRY = [sys.executable, "-m", "ferry"]
# A wrong address must fail well within this.
CONNECT_ERROR_BOUND_S = 8.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_driver(code, env, timeout=120):
    """Runs `code` in a fresh driver; returns the JSON object it printed last."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


CONNECT = """
    import json, time, ferry
    t0 = time.monotonic()
    try:
        ferry.init(address={address!r})
        out = {{"error": None}}
    except Exception as e:
        out = {{"error": type(e).__name__, "message": str(e)}}
    out["seconds"] = time.monotonic() - t0
    print(json.dumps(out))
"""


@pytest.fixture
def env(tmp_path):
    e = dict(os.environ)
    e["FERRY_TEMP_DIR"] = str(tmp_path / "ferry")
    e["FERRY_TOKEN"] = "0" * 32
    e.pop("FERRY_ADDRESS", None)
    return e


def test_nothing_listening_is_a_connection_error_at_once(env):
    out = run_driver(CONNECT.format(address=f"127.0.0.1:{free_port()}"), env)
    assert out["error"] == "ConnectionError", out
    assert "no ferry head" in out["message"], out
    assert out["seconds"] < CONNECT_ERROR_BOUND_S, out


@pytest.mark.parametrize("reply", [b"", b"HTTP/1.1 400 Bad Request\r\n\r\n"],
                         ids=["silent", "http"])
def test_a_server_that_is_not_a_ferry_head_is_a_connection_error(env, reply):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted = []

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(conn)
            if reply:
                conn.sendall(reply)
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        port = listener.getsockname()[1]
        out = run_driver(CONNECT.format(address=f"127.0.0.1:{port}"), env)
    finally:
        listener.close()
        for c in accepted:
            c.close()
    assert out["error"] == "ConnectionError", out
    assert out["seconds"] < CONNECT_ERROR_BOUND_S, out


@pytest.fixture
def head(env):
    """A real `ferry start --head` on loopback; `ferry stop` afterwards."""
    port = free_port()
    env = dict(env)
    env.pop("FERRY_TOKEN")
    started = subprocess.run(FERRY + ["start", "--head", "--port", str(port), "--num-cpus", "2"],
                             env=env, capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stdout + started.stderr
    with open(os.path.join(env["FERRY_TEMP_DIR"], "ferry_current_cluster")) as f:
        cluster = json.load(f)
    yield env, port, cluster
    stopped = subprocess.run(FERRY + ["stop"], env=env, capture_output=True, text=True,
                             timeout=60)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr


def test_a_wrong_token_is_refused(head):
    env, port, _ = head
    env = dict(env, FERRY_TOKEN="f" * 32)
    out = run_driver(CONNECT.format(address=f"127.0.0.1:{port}"), env)
    assert out["error"] == "ConnectionError", out
    assert "token" in out["message"], out
    assert out["seconds"] < CONNECT_ERROR_BOUND_S, out


def test_head_and_a_joined_node_place_actors_and_stop_cleanly(head, tmp_path):
    env, port, cluster = head
    # A second node on this host, with a resource only it has (its own
    # temp dir: ferry stop stops the daemons a temp dir lists).
    join_env = dict(env, FERRY_TEMP_DIR=str(tmp_path / "second"), FERRY_TOKEN=cluster["token"])
    joined = subprocess.run(FERRY + ["start", "--address", f"127.0.0.1:{port}", "--num-cpus",
                                     "1", "--resources", '{"special": 1}'],
                            env=join_env, capture_output=True, text=True, timeout=60)
    assert joined.returncode == 0, joined.stdout + joined.stderr
    try:
        out = run_driver("""
            import json, os, ferry
            from ferry.util.scheduling_strategies import NodeAffinitySchedulingStrategy
            ferry.init(address="auto")

            @ferry.remote
            class Where:
                def node(self):
                    return os.environ["FERRY_NODE_ID"], os.getpid()

            special = Where.options(resources={"special": 1}).remote()
            nodes = ferry.nodes()
            head_id = [n["NodeID"] for n in nodes if n["IsHead"]][0]
            pinned = Where.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(head_id)).remote()
            spread = [Where.options(scheduling_strategy="SPREAD").remote() for _ in range(2)]
            try:
                Where.options(num_gpus=1).remote()
                infeasible = None
            except ValueError as e:
                infeasible = str(e)
            print(json.dumps({
                "nodes": [(n["NodeID"], n["Alive"], n["Resources"]) for n in nodes],
                "head": head_id,
                "special": ferry.get(special.node.remote(), timeout=60)[0],
                "pinned": ferry.get(pinned.node.remote(), timeout=60)[0],
                "spread": sorted(ferry.get(a.node.remote(), timeout=60)[0] for a in spread),
                "pids": [ferry.get(a.node.remote(), timeout=60)[1]
                         for a in [special, pinned] + spread],
                "infeasible": infeasible}))
        """, dict(env))
    finally:
        stopped = subprocess.run(FERRY + ["stop"], env=join_env, capture_output=True, text=True,
                                 timeout=60)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    ids = {n[0] for n in out["nodes"]}
    assert len(ids) == 2 and all(n[1] for n in out["nodes"]), out
    other = (ids - {out["head"]}).pop()
    assert out["special"] == other, out
    assert out["pinned"] == out["head"], out
    assert out["spread"] == sorted(ids), out
    assert out["infeasible"] is not None and "GPU" in out["infeasible"], out
    # The driver exited: the head killed its actors; the joined node's stop
    # took its workers along.
    assert wait_for(lambda: not any(os.path.exists(f"/proc/{p}") for p in out["pids"]),
                    EXIT_DEADLINE), out["pids"]


def test_gpus_are_handed_out_as_ids_and_waiting_for_resources_is_reported(env, tmp_path):
    """A node started with --num-gpus 2 (GPUs are a count to ferry: no device
    is touched): each actor asking for one gets its own id in
    CUDA_VISIBLE_DEVICES and ferry.get_gpu_ids(); a third waits — with a
    warning in the driver's log — and a get on it is bounded by its timeout;
    when an actor exits, the waiting one starts on the freed GPU."""
    port = free_port()
    env = dict(env, FERRY_PENDING_WARNING_S="1")
    env.pop("FERRY_TOKEN")
    started = subprocess.run(FERRY + ["start", "--head", "--port", str(port), "--num-cpus", "4",
                                      "--num-gpus", "2"],
                             env=env, capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent("""
            import json, os, ferry
            ferry.init(address="auto")

            @ferry.remote(num_gpus=1)
            class Gpu:
                def ids(self):
                    return os.environ.get("CUDA_VISIBLE_DEVICES"), ferry.get_gpu_ids()

            a, b = Gpu.remote(), Gpu.remote()
            got = [ferry.get(x.ids.remote(), timeout=60) for x in (a, b)]
            c = Gpu.remote()
            try:
                ferry.get(c.ids.remote(), timeout=3)
                waited = None
            except ferry.exceptions.GetTimeoutError as e:
                waited = type(e).__name__
            ferry.kill(a)
            after = ferry.get(c.ids.remote(), timeout=60)
            print(json.dumps({"got": got, "waited": waited, "after": after,
                              "freed": got[0]}))
        """)], env=env, capture_output=True, text=True, timeout=120)
    finally:
        subprocess.run(FERRY + ["stop"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sorted(out["got"]) == [["0", [0]], ["1", [1]]], out
    assert out["waited"] == "GetTimeoutError", out
    assert out["after"] == out["freed"], out
    assert "has not started after" in proc.stderr and "GPU: 1" in proc.stderr, proc.stderr
