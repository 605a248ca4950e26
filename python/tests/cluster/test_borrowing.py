"""Borrowing across hosts: refs that travel inside values between the
driver on h1 and actors on h2 and h3 stay alive while any of them holds one,
and are freed once none does, a holder killed with SIGKILL included.

The counts observed are the owners': the driver's table of owned objects
for a ref it put, and the producer's tensor store for the guide's NIXL
pattern (an actor on h2 puts a tensor and returns the ref)."""
import os
import signal

import pytest

from .snippets import driver

pytestmark = pytest.mark.cluster

DRIVER = driver("""
    import gc

    import torch
    import ferry
    from ferry._private import runtime
    from driver_lib import GET_TIMEOUT_S, connect, emit, pinned, wait_for

    connect()


    @ferry.remote
    class Holder:
        def hold(self, refs):
            self.held = refs
            return len(refs)

        def pass_held(self, other):
            n = ferry.get(other.hold.remote(self.held), timeout=GET_TIMEOUT_S)
            self.held = None
            gc.collect()
            return n

        def sum_held(self):
            return float(sum(t.sum() for t in ferry.get(list(self.held), timeout=GET_TIMEOUT_S)))

        def produce(self):
            return ferry.put(torch.ones(1000), _tensor_transport="nixl")

        def store_objects(self):
            gc.collect()
            return ferry.experimental.tensor_store_stats()["num_objects"]

        where = where_method


    def owned():
        gc.collect()
        return runtime.current().stats()["owned_objects"]


    on_h2, on_h3 = pinned(Holder, "h2").remote(), pinned(Holder, "h3").remote()
    base = owned()
    x = ferry.put(torch.full((64,), 2.0))
    ferry.get(on_h2.hold.remote([x]), timeout=GET_TIMEOUT_S)
    del x  # the owner's own copy
    ferry.get(on_h2.pass_held.remote(on_h3), timeout=GET_TIMEOUT_S)  # h2 -> h3, h2 lets go
    held_on_h3 = owned() == base + 1
    sum_on_h3 = ferry.get(on_h3.sum_held.remote(), timeout=GET_TIMEOUT_S)
    h3_pid = ferry.get(on_h3.where.remote(), timeout=GET_TIMEOUT_S)["pid"]

    # The guide's NIXL pattern across hosts, 200 times: h2's store empties.
    for _ in range(200):
        inner = ferry.get(on_h2.produce.remote(), timeout=GET_TIMEOUT_S)
        assert float(ferry.get(inner, timeout=GET_TIMEOUT_S).sum()) == 1000.0
        del inner
    h2_store_empty = bool(wait_for(
        lambda: ferry.get(on_h2.store_objects.remote(), timeout=GET_TIMEOUT_S) == 0, 30))
    emit({"held_on_h3": held_on_h3, "sum_on_h3": sum_on_h3, "h3_pid": h3_pid,
          "h2_store_empty": h2_store_empty})

    # The test kills the holder on h3 (SIGKILL): its borrow ends with it.
    emit({"freed_after_kill": bool(wait_for(lambda: owned() == base, 30))})
    """)


def test_refs_passed_between_hosts_live_until_the_last_holder_and_a_killed_one_lets_go(cluster):
    drv = cluster.popen_driver("h1", DRIVER)
    try:
        first = drv.next_json(timeout=180)
        assert first["held_on_h3"], first
        assert first["sum_on_h3"] == 128.0, first
        assert first["h2_store_empty"], first
        os.kill(first["h3_pid"], signal.SIGKILL)
        second = drv.next_json(timeout=60)
        assert second["freed_after_kill"], second
        assert drv.finish(timeout=60) == 0, drv.describe()
    finally:
        drv.finish(timeout=10)
