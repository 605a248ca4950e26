"""A restartable actor whose node dies comes back on another node: h3's
node daemon is killed with SIGKILL, the Head declares h3 dead after
NODE_TIMEOUT_S, and the actor (max_restarts=1, placed on h3 with a soft
node affinity) is re-created on h1 or h2 by its constructor. The driver's
calls made meanwhile wait for it; an actor that may not restart on the same
node dies with it."""
import os
import signal

import pytest

from .snippets import driver

pytestmark = pytest.mark.cluster

NODE_TIMEOUT_S = 2
ENV = {"FERRY_NODE_TIMEOUT_S": str(NODE_TIMEOUT_S), "FERRY_HEARTBEAT_INTERVAL_MS": "200"}

RESTART_DRIVER = driver("""
    import ferry
    from ferry.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    from driver_lib import (GET_TIMEOUT_S, alive_nodes, connect, emit, error, node_id, pinned,
                            wait_for)

    connect()


    @ferry.remote
    class Survivor:
        def __init__(self, tag):
            self.tag = tag
            self.calls = 0

        def call(self):
            self.calls += 1
            return [self.tag, self.calls]

        where = where_method


    h3 = node_id("h3")
    soft_h3 = NodeAffinitySchedulingStrategy(h3, soft=True)
    survivor = Survivor.options(scheduling_strategy=soft_h3, max_restarts=1,
                                max_task_retries=1).remote("kept")
    mortal = pinned(Survivor, "h3").remote("gone")  # max_restarts=0
    first = ferry.get(survivor.where.remote(), timeout=GET_TIMEOUT_S)
    calls = [ferry.get(survivor.call.remote(), timeout=GET_TIMEOUT_S) for _ in range(2)]
    ferry.get(mortal.where.remote(), timeout=GET_TIMEOUT_S)
    emit({"phase": "ready", "first": first, "calls": calls})
    input()  # the test kills h3's daemon, then says go
    # Until the Head declares h3 dead, its worker may still answer.
    h3_died = bool(wait_for(lambda: all(n["NodeID"] != h3 for n in alive_nodes()), 30))

    out = {"phase": "after", "h3_died": h3_died}
    try:
        out["where"] = ferry.get(survivor.where.remote(), timeout=120)
        out["call"] = ferry.get(survivor.call.remote(), timeout=60)
    except Exception as e:
        out["survivor_error"] = error(e)
    try:
        ferry.get(mortal.where.remote(), timeout=60)
        out["mortal_error"] = None
    except Exception as e:
        out["mortal_error"] = error(e)
    emit(out)
    """)


def test_a_restartable_actor_whose_node_dies_comes_back_on_another_node(fresh_cluster):
    cluster = fresh_cluster(env=ENV)
    drv = cluster.popen_driver("h1", RESTART_DRIVER)
    try:
        ready = drv.next_json(timeout=120)
        assert ready["phase"] == "ready", ready
        assert ready["first"]["hostname"] == "ferry-h3", ready
        assert ready["calls"] == [["kept", 1], ["kept", 2]]
        for pid in cluster.node_daemon_pids("h3"):
            os.kill(pid, signal.SIGKILL)
        drv.proc.stdin.write("go\n")
        drv.proc.stdin.flush()

        after = drv.next_json(timeout=180)
        assert after["h3_died"], after
        assert "survivor_error" not in after, after
        assert after["where"]["hostname"] in ("ferry-h1", "ferry-h2"), after
        assert after["call"] == ["kept", 1], "state rebuilt by the constructor"
        assert after["mortal_error"] and "ActorDiedError" in after["mortal_error"]["mro"], after
        rc = drv.finish(timeout=60)
        assert rc == 0, f"driver exited {rc}\n{drv.describe()}"
    finally:
        drv.finish(timeout=10)
