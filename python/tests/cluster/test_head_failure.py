"""The Head's own death: the Head is a single point of failure (as Ray's GCS
without fault tolerance), so what matters is that everyone notices, nothing
hangs, and `ferry stop` still cleans up.

The head daemon on h1 is killed with SIGKILL while a driver on h2 holds
actors on h2 and h3. The nodes on h2 and h3 lose their connection to the
Head and stop with their workers; the driver's calls to those actors fail
with ActorDiedError within the bound, and asking the cluster for its nodes
fails with an error instead of waiting. The fixture's teardown then runs
`ferry stop` on every host and fails if any process or ferry shared memory
is left."""
import os
import signal
import time

import pytest

from .netns import EXIT_DEADLINE_S, wait_for
from .snippets import driver

pytestmark = pytest.mark.cluster

# Nodes notice at once (their TCP connection to the head closes); the slack
# covers worker exit and the driver noticing its channels close.
BOUND_S = 15

HEAD_LOSS_DRIVER = driver("""
    import time
    import ferry
    from driver_lib import GET_TIMEOUT_S, connect, emit, error, pinned

    connect()


    @ferry.remote
    class Echo:
        def ping(self):
            return "pong"

        where = where_method


    actors = {h: pinned(Echo, h).remote() for h in ("h2", "h3")}
    where = {h: ferry.get(a.where.remote(), timeout=GET_TIMEOUT_S) for h, a in actors.items()}
    emit({"phase": "ready", "where": where})
    input()  # the test kills the head, then writes a line
    struck = time.time()
    outcomes = {}
    for h, a in actors.items():
        t0 = time.monotonic()
        deadline = time.monotonic() + 60
        while True:
            try:
                ferry.get(a.ping.remote(), timeout=10)
            except Exception as e:
                outcomes[h] = {"error": error(e), "seconds": time.monotonic() - t0}
                break
            if time.monotonic() > deadline:
                outcomes[h] = {"error": None}
                break
    try:
        ferry.nodes()
        nodes_error = None
    except Exception as e:
        nodes_error = error(e)
    emit({"phase": "after", "outcomes": outcomes, "nodes_error": nodes_error,
          "seconds": time.time() - struck})
    """)


def test_head_killed_fails_callers_and_stops_every_node(fresh_cluster):
    cluster = fresh_cluster()
    drv = cluster.popen_driver("h2", HEAD_LOSS_DRIVER)
    try:
        ready = drv.next_json(timeout=120)
        assert ready["phase"] == "ready", ready
        worker_pids = [w["pid"] for w in ready["where"].values()]
        head_pids = cluster.node_daemon_pids("h1")
        assert head_pids
        for pid in head_pids:
            os.kill(pid, signal.SIGKILL)
        assert drv.proc.stdin is not None
        drv.proc.stdin.write("go\n")
        drv.proc.stdin.flush()
        after = drv.next_json(timeout=120)
        assert after["phase"] == "after", after
        for host, outcome in after["outcomes"].items():
            assert outcome["error"] is not None, f"the actor on {host} kept answering"
            assert outcome["error"]["type"] == "ActorDiedError", outcome
            assert outcome["seconds"] < BOUND_S, (host, outcome)
        assert after["nodes_error"] is not None, "ferry.nodes() answered without a head"
        # The joined nodes stop with their workers.
        for host in ("h2", "h3"):
            assert wait_for(lambda: not cluster.node_daemon_pids(host), EXIT_DEADLINE_S + 10), \
                f"the node daemon on {host} outlived the head"
        assert wait_for(lambda: not any(os.path.exists(f"/proc/{p}") for p in worker_pids),
                        EXIT_DEADLINE_S), worker_pids
        assert drv.finish(timeout=60) == 0, drv.describe()
    finally:
        drv.finish(timeout=10)
