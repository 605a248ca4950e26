"""Failures during a transfer from h3 to the driver on h1: h3's node daemon
killed with SIGKILL, h3 cut off the network, or only the producing actor's
worker killed.

Each test gets a cluster of its own (``fresh_cluster``) whose daemons declare
a node dead after NODE_TIMEOUT_S and bound a transfer by TRANSFER_TIMEOUT_S.
h3's link is limited to LINK_RATE, so the 256 MiB value takes about 10 s to
cross it; the fault is struck once h3 has sent FAULT_AFTER_BYTES of it.

What callers see: the driver's ``get`` of the value raises ActorDiedError
(or TransportError / ObjectLostError for the lost transfer) within
NODE_TIMEOUT_S + TRANSFER_TIMEOUT_S (+ SLACK_S for process start-up and
polling), while an actor on h2 keeps answering. A lost node is listed dead;
a lost worker leaves its node alive, and a new actor there answers."""
import os
import signal
import time

import pytest

from .netns import EXIT_DEADLINE_S, wait_for
from .snippets import driver

pytestmark = pytest.mark.cluster

NODE_TIMEOUT_S = 2
TRANSFER_TIMEOUT_S = 10
SLACK_S = 8
FAILURE_ENV = {"FERRY_NODE_TIMEOUT_S": str(NODE_TIMEOUT_S),
               "FERRY_HEARTBEAT_INTERVAL_MS": "200",
               "FERRY_TRANSFER_TIMEOUT_S": str(TRANSFER_TIMEOUT_S)}
LINK_RATE = "200mbit"  # 25 MB/s: 256 MiB takes ~10.7 s
VALUE_BYTES = 256 << 20
FAULT_AFTER_BYTES = 8 << 20
# The exceptions a caller may see for a value lost with its producer.
LOST_ERRORS = {"ActorDiedError", "TransportError", "ObjectLostError"}

TRANSFER_DRIVER = driver(f"""
    import os
    import time
    import ferry
    from driver_lib import (GET_TIMEOUT_S, alive_nodes, connect, emit, error, node_id, pinned,
                            wait_for)

    FAULT = os.environ["TEST_FAULT"]
    connect()


    @ferry.remote
    class Holder:
        def prepare(self, nbytes):
            self.value = make_value(5, nbytes)
            return nbytes

        def payload(self):
            return self.value

        def ping(self):
            return "pong"

        where = where_method


    h3 = node_id("h3")
    far, near = pinned(Holder, "h3").remote(), pinned(Holder, "h2").remote()
    far_where = ferry.get(far.where.remote(), timeout=GET_TIMEOUT_S)
    near_where = ferry.get(near.where.remote(), timeout=GET_TIMEOUT_S)
    ferry.get(far.prepare.remote({VALUE_BYTES}), timeout=GET_TIMEOUT_S)
    emit({{"phase": "ready", "far": far_where, "near": near_where, "h3": h3}})

    try:
        value = ferry.get(far.payload.remote(), timeout=120)
        outcome = {{"value_nbytes": int(value.nbytes)}}
        del value
    except Exception as e:
        outcome = {{"error": error(e)}}
    emit({{"phase": "failed", "at": time.time(), **outcome}})

    t0 = time.monotonic()
    try:
        near_answer = ferry.get(near.ping.remote(), timeout=30)
    except Exception as e:
        near_answer = error(e)
    near_seconds = time.monotonic() - t0


    def h3_alive():
        return any(n["NodeID"] == h3 for n in alive_nodes())


    if FAULT == "sigkill_worker":
        # The node must outlive its worker: it stays listed past a node
        # timeout, and a new actor there answers.
        h3_died = bool(wait_for(lambda: not h3_alive(), 2 * {NODE_TIMEOUT_S}))
        try:
            again = ferry.get(pinned(Holder, "h3").remote().where.remote(), timeout=GET_TIMEOUT_S)
        except Exception as e:
            again = {{"error": error(e)}}
    else:
        h3_died = bool(wait_for(lambda: not h3_alive(), 30))
        again = None
    emit({{"phase": "after", "near": near_answer, "near_seconds": near_seconds,
           "h3_died": h3_died, "h3_died_seen_at": time.time(), "again": again}})
    """)


def _pids_in(cluster, host, marker):
    return [pid for pid, h, cmd in cluster.hosts.processes() if h == host and marker in cmd]


def _strike(cluster, fault, far_pid):
    """Strikes ``fault`` at h3; returns the wall-clock time it was struck."""
    if fault == "sigkill_daemon":
        pids = cluster.node_daemon_pids("h3")
        daemons = _pids_in(cluster, "h3", "ferry._private.node_daemon")
        assert pids and set(pids) <= set(daemons), (pids, daemons)
        at = time.time()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        return at
    if fault == "cut_link":
        at = time.time()
        cluster.hosts.cut("h3")
        return at
    assert fault == "sigkill_worker"
    assert far_pid in _pids_in(cluster, "h3", "ferry._worker"), far_pid
    at = time.time()
    os.kill(far_pid, signal.SIGKILL)
    return at


@pytest.mark.parametrize("fault", ["sigkill_daemon", "cut_link", "sigkill_worker"])
def test_fault_at_the_producing_host_during_a_transfer(fresh_cluster, fault):
    cluster = fresh_cluster(env=FAILURE_ENV)
    cluster.hosts.shape("h3", LINK_RATE)
    drv = cluster.popen_driver("h1", TRANSFER_DRIVER, env={"TEST_FAULT": fault})
    try:
        ready = drv.next_json(timeout=120)
        assert ready["phase"] == "ready", ready
        assert ready["far"]["hostname"] == "ferry-h3" and ready["near"]["hostname"] == "ferry-h2"
        base = cluster.hosts.tx_bytes("h3")
        started = wait_for(lambda: cluster.hosts.tx_bytes("h3") - base >= FAULT_AFTER_BYTES, 60)
        assert started, (f"h3 sent {cluster.hosts.tx_bytes('h3') - base} bytes in 60 s; the "
                         f"transfer never got going\n{drv.describe()}")
        struck_at = _strike(cluster, fault, ready["far"]["pid"])

        bound = NODE_TIMEOUT_S + TRANSFER_TIMEOUT_S + SLACK_S
        failed = drv.next_json(timeout=bound + 30)
        assert failed["phase"] == "failed", failed
        assert "error" in failed, (f"the driver got the whole value after {fault}: {failed}\n"
                                   f"{drv.describe()}")
        assert LOST_ERRORS & set(failed["error"]["mro"]), failed["error"]
        took = failed["at"] - struck_at
        assert took <= bound, f"the driver learned of {fault} after {took:.1f} s (bound {bound} s)"

        after = drv.next_json(timeout=120)
        assert after["near"] == "pong", f"the actor on h2 stopped answering: {after['near']}"
        assert after["near_seconds"] < 10, after
        if fault == "sigkill_worker":
            assert not after["h3_died"], "h3 was declared dead when only a worker died"
            assert after["again"].get("hostname") == "ferry-h3", after["again"]
        else:
            assert after["h3_died"], f"h3 is still listed alive after {fault}"
            assert after["h3_died_seen_at"] - struck_at <= NODE_TIMEOUT_S + 30, after
        if fault != "cut_link":
            # Workers exit with their node daemon (and a killed one is gone).
            far_pid = ready["far"]["pid"]
            assert wait_for(lambda: far_pid not in _pids_in(cluster, "h3", "ferry._worker"),
                            NODE_TIMEOUT_S + EXIT_DEADLINE_S), f"worker {far_pid} on h3 outlived {fault}"
        rc = drv.finish(timeout=60)
        assert rc == 0, f"driver exited {rc}\n{drv.describe()}"
    finally:
        drv.finish(timeout=10)
        cluster.hosts.heal("h3")
        cluster.hosts.unshape("h3")
