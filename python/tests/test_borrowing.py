"""Ownership with borrowers: refs that travel inside values are freed when
their last holder, anywhere, drops them. (The RSS check across these
patterns is in test_leaks.py, which ASan runs skip.)

Each test makes the owner's count observable: a producer's tensor store
(the guide's NIXL pattern keeps tensors in the actor that put them) or the
driver's table of owned objects. Frees are one-way messages, so tests wait
for the expected count with a deadline.
"""
import gc
import os
import signal

import pytest

from conftest import GET_TIMEOUT, wait_for

pytestmark = pytest.mark.usefixtures("ferry_module_session")
torch = pytest.importorskip("torch")

FREE_DEADLINE = 30.0


@pytest.fixture(scope="module")
def B(ferry_module_session):
    import borrowing_actors
    return borrowing_actors


def counts(actor):
    import ferry
    return ferry.get(actor.counts.remote(), timeout=GET_TIMEOUT)


def _driver_owned():
    from ferry._private import runtime
    gc.collect()
    return runtime.current().stats()["owned_objects"]


def wait_store(actor, n):
    last = {}

    def check():
        last["counts"] = counts(actor)
        return last["counts"]["store_num_objects"] == n
    assert wait_for(check, FREE_DEADLINE, interval=0.05), f"expected {n} objects: {last['counts']}"


def _wait_driver_owns(n):
    assert wait_for(lambda: _driver_owned() == n, FREE_DEADLINE, interval=0.05), \
        f"the driver owns {_driver_owned()} objects, expected {n}"


def guide_pattern(producer, count, batch=500):
    """The guide's NIXL pattern: the producer puts a tensor and returns the
    ref; the driver gets the ref, then the tensor; every ref is dropped."""
    import ferry
    for start in range(0, count, batch):
        n = min(batch, count - start)
        inner = ferry.get([producer.produce.remote(4) for _ in range(n)], timeout=GET_TIMEOUT)
        values = ferry.get(inner, timeout=GET_TIMEOUT)
        assert all(float(v.sum()) == 4.0 for v in values)
        del inner, values


def test_guide_put_and_return_pattern_leaves_the_producer_store_empty(B):
    producer = B.Producer.remote()
    guide_pattern(producer, 10_000)
    wait_store(producer, 0)
    left = counts(producer)
    assert left["owned_objects"] == 0 and left["value_holds"] == 0, left


def test_nested_refs_arrive_as_refs_that_the_task_can_get_and_wait_on(B):
    import ferry
    holder = B.Holder.remote()
    a, b = ferry.put(1), ferry.put("two")
    assert ferry.get(holder.kinds.remote([a, b]), timeout=GET_TIMEOUT) == ["ObjectRef"] * 2
    assert ferry.get(holder.wait_then_get.remote([a, b]), timeout=GET_TIMEOUT) == [1, "two"]
    # At the top level the same ref is resolved before the call.
    assert ferry.get(holder.hold.remote("xy"), timeout=GET_TIMEOUT) == 2


def test_refs_nested_in_a_returned_list_live_until_the_last_holder_drops_them(B):
    import ferry
    producer, holder = B.Producer.remote(), B.Holder.remote()
    refs = ferry.get(producer.produce_list.remote(5), timeout=GET_TIMEOUT)
    assert ferry.get(holder.hold.remote(refs), timeout=GET_TIMEOUT) == 5
    del refs
    gc.collect()
    wait_store(producer, 5)  # the holder still has them
    # One-sided RDT refs nested in arguments are pulled by get in the task.
    assert ferry.get(holder.sum_held.remote(), timeout=GET_TIMEOUT) == sum(4.0 * i for i in range(5))
    ferry.get(holder.drop.remote(), timeout=GET_TIMEOUT)
    wait_store(producer, 0)


def test_refs_inside_a_put_value_live_while_the_put_does(B):
    import ferry
    base = _driver_owned()
    inner = ferry.put(torch.arange(4))
    outer = ferry.put({"inner": [inner]})
    del inner
    gc.collect()
    assert _driver_owned() == base + 2, "the put value holds the inner ref"
    got = ferry.get(outer, timeout=GET_TIMEOUT)["inner"][0]
    assert torch.equal(ferry.get(got, timeout=GET_TIMEOUT), torch.arange(4))
    del got, outer
    _wait_driver_owns(base)

    # A put holding refs that another process owns (the producer's tensors).
    producer = B.Producer.remote()
    outer = ferry.put(ferry.get(producer.produce_list.remote(3), timeout=GET_TIMEOUT))
    gc.collect()
    wait_store(producer, 3)
    del outer
    wait_store(producer, 0)


def test_refs_in_constructor_arguments_live_until_the_actor_drops_them(B):
    import ferry
    producer = B.Producer.remote()
    refs = ferry.get(producer.produce_list.remote(2), timeout=GET_TIMEOUT)
    holder = B.Holder.remote(refs)
    del refs
    gc.collect()
    assert ferry.get(holder.sum_held.remote(), timeout=GET_TIMEOUT) == 4.0
    wait_store(producer, 2)
    ferry.get(holder.drop.remote(), timeout=GET_TIMEOUT)
    wait_store(producer, 0)
    # A top-level constructor argument is resolved and not kept by anyone.
    base = _driver_owned()
    value = ferry.put([7])
    held = B.Holder.remote(value)
    assert ferry.get(held.held_value.remote(), timeout=GET_TIMEOUT) == [7]
    del value
    _wait_driver_owns(base)


def test_a_borrower_killed_with_sigkill_releases_its_borrows(B):
    import ferry
    producer, holder = B.Producer.remote(), B.Holder.remote()
    base = _driver_owned()
    mine = ferry.put(torch.ones(8))
    theirs = ferry.get(producer.produce_list.remote(3), timeout=GET_TIMEOUT)
    ferry.get(holder.hold.remote([mine] + theirs), timeout=GET_TIMEOUT)
    del mine, theirs
    gc.collect()
    assert _driver_owned() == base + 1
    wait_store(producer, 3)
    os.kill(ferry.get(holder.pid.remote(), timeout=GET_TIMEOUT), signal.SIGKILL)
    _wait_driver_owns(base)
    wait_store(producer, 0)


def test_a_get_of_many_values_registers_their_borrowed_refs_once_per_owner(B):
    import ferry
    from ferry._private import runtime
    producer = B.Producer.remote()
    lists = [producer.produce_list.remote(2) for _ in range(10)]
    ferry.wait(lists, num_returns=len(lists), timeout=GET_TIMEOUT)
    before = runtime.current().stats()["borrow_requests"]
    values = ferry.get(lists, timeout=GET_TIMEOUT)
    assert runtime.current().stats()["borrow_requests"] - before == 1, "one request, one owner"
    assert sum(len(v) for v in values) == 20
    # A task argument holding all 20 refs: registered at once as well.
    holder = B.Holder.remote()
    assert ferry.get(holder.hold.remote([v for v in values]), timeout=GET_TIMEOUT) == 10
    assert counts(holder)["borrow_requests"] == 1, counts(holder)
    del lists, values


def test_a_caller_killed_with_sigkill_releases_what_the_values_it_owned_held(B):
    import ferry
    producer, caller = B.Producer.remote(), B.Holder.remote()
    # The caller owns the returned list; the producer holds the refs in it.
    assert ferry.get(caller.call_and_keep.remote(producer, 3), timeout=GET_TIMEOUT)
    wait_store(producer, 3)
    os.kill(ferry.get(caller.pid.remote(), timeout=GET_TIMEOUT), signal.SIGKILL)
    wait_store(producer, 0)
    left = counts(producer)
    assert left["value_holds"] == 0 and left["owned_objects"] == 0, left


def test_a_ref_handed_a_to_b_to_c_outlives_the_owners_copy_until_c_is_done(B):
    import ferry
    a, b, c = B.Holder.remote(), B.Holder.remote(), B.Holder.remote()
    base = _driver_owned()
    x = ferry.put(torch.full((16,), 2.0))
    ferry.get(a.hold.remote([x]), timeout=GET_TIMEOUT)
    del x  # the owner's own copy
    # A hands the ref to B and drops its copy; B does the same to C.
    assert ferry.get(a.pass_held.remote(b), timeout=GET_TIMEOUT) == 1
    assert ferry.get(b.pass_held.remote(c), timeout=GET_TIMEOUT) == 1
    assert _driver_owned() == base + 1
    assert ferry.get(c.sum_held.remote(), timeout=GET_TIMEOUT) == 32.0
    ferry.get(c.drop.remote(), timeout=GET_TIMEOUT)
    _wait_driver_owns(base)
