"""`ferry stop` on every host ends the cluster while a driver is still
connected and actors hold objects on every host: no process is left in the
hosts, no ferry file in /dev/shm, and the driver's next call fails instead of
hanging."""
import pytest

from .netns import EXIT_DEADLINE_S, ClusterError, wait_for
from .snippets import driver

pytestmark = pytest.mark.cluster

BUSY_DRIVER = driver("""
    import sys
    import torch
    import ferry
    from ferry.experimental.collective import create_collective_group
    from driver_lib import GET_TIMEOUT_S, connect, emit, error, pinned

    connect()


    @ferry.remote
    class Holder:
        def hold(self, seed):
            self.value = make_value(seed)
            self.ref = ferry.put(self.value)
            return self.value

        @ferry.method(tensor_transport="nixl")
        def tensor(self):
            return torch.ones(4 << 20)

        @ferry.method(tensor_transport="gloo")
        def gloo_tensor(self):
            return torch.ones(4 << 20)

        def total(self, t):
            return float(t.sum())

        where = where_method


    holders = [pinned(Holder, h).remote() for h in ("h1", "h2", "h3")]
    group = create_collective_group(holders[1:], backend="gloo")
    values = [h.hold.remote(i) for i, h in enumerate(holders)]
    driver_ref = ferry.put(make_value(99))
    tensors = [h.tensor.remote() for h in holders]
    totals = ferry.get([holders[1].total.remote(tensors[2]),
                        holders[2].total.remote(holders[1].gloo_tensor.remote())],
                       timeout=GET_TIMEOUT_S)
    digests = [digest(v) for v in ferry.get(values, timeout=GET_TIMEOUT_S)]
    emit({"phase": "holding", "totals": totals, "digests": len(digests),
          "wheres": ferry.get([h.where.remote() for h in holders], timeout=GET_TIMEOUT_S)})

    sys.stdin.read()  # the test stops the cluster, then closes our stdin
    try:
        ferry.get(holders[0].where.remote(), timeout=20)
        after = {"answered": True}
    except Exception as e:
        after = {"error": error(e)}
    emit({"phase": "after", **after})
    """)


def test_ferry_stop_on_every_host_leaves_no_process_and_no_shared_memory(fresh_cluster):
    cluster = fresh_cluster()
    drv = cluster.popen_driver("h1", BUSY_DRIVER)
    try:
        holding = drv.next_json(timeout=180)
        assert holding["phase"] == "holding", holding
        assert holding["totals"] == [float(4 << 20)] * 2, holding
        assert sorted(w["hostname"] for w in holding["wheres"]) == ["ferry-h1", "ferry-h2", "ferry-h3"]
        # `ferry stop` on h3, h2, then h1; then no process may be left in the
        # hosts but this driver, which is not ferry's to stop.
        errors = []
        for host in reversed(cluster.hosts.hosts):
            try:
                cluster.ferry_command(host, ["stop"], timeout=60)
            except ClusterError as e:
                errors.append(str(e))
        assert not errors, "\n".join(errors)

        def others():
            return [p for p in cluster.hosts.processes() if p[0] != drv.proc.pid]

        assert wait_for(lambda: not others(), EXIT_DEADLINE_S), f"left after ferry stop: {others()}"

        drv.proc.stdin.close()  # the driver calls an actor of the stopped cluster
        after = drv.next_json(timeout=60)
        assert after["phase"] == "after", after
        assert "error" in after, f"a call to an actor of a stopped cluster answered: {after}"
        rc = drv.finish(timeout=60)
        assert rc == 0, f"the driver exited {rc} after its cluster stopped\n{drv.describe()}"
    finally:
        drv.finish(timeout=10)
    # Everything gone, /dev/shm included (stop raises ClusterError otherwise).
    cluster.stop()
