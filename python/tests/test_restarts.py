"""Actors that come back: max_restarts, max_task_retries, retry_exceptions,
kill(no_restart=...), and what happens to RDT objects of a restarted
producer (Ray's semantics, with real worker processes killed for real)."""
import os
import signal
import uuid

import pytest

from conftest import wait_for

TIMEOUT = 60


@pytest.fixture(scope="module")
def ferry(ferry_module_session):
    return ferry_module_session


@pytest.fixture(scope="module")
def ra():
    import restart_actors
    return restart_actors


def _kill9(ferry, actor):
    pid = ferry.get(actor.pid.remote(), timeout=TIMEOUT)
    os.kill(pid, signal.SIGKILL)
    return pid


def test_actor_restarts_with_its_constructor_after_its_process_dies(ferry, ra):
    a = ra.Counter.options(max_restarts=1, max_task_retries=1).remote(start=10)
    assert ferry.get(a.incr.remote(), timeout=TIMEOUT) == 11
    old = _kill9(ferry, a)
    # Retried if it reached the old process: it runs in the new one.
    assert ferry.get(a.incr.remote(), timeout=TIMEOUT) == 11, "fresh state from __init__(10)"
    new = ferry.get(a.pid.remote(), timeout=TIMEOUT)
    assert new != old
    # max_restarts=1 is spent: the next death is final.
    os.kill(new, signal.SIGKILL)
    with pytest.raises(ferry.exceptions.ActorDiedError):
        ferry.get(a.incr.remote(), timeout=TIMEOUT)
    with pytest.raises(ferry.exceptions.ActorDiedError):
        ferry.get(a.incr.remote(), timeout=TIMEOUT)


def test_call_interrupted_by_the_death_fails_without_retries_then_the_actor_serves_again(
        ferry, ra):
    a = ra.Counter.options(max_restarts=1).remote()
    assert ferry.get(a.incr.remote(), timeout=TIMEOUT) == 1
    with pytest.raises(ferry.exceptions.ActorDiedError, match="die"):
        ferry.get(a.die.remote(), timeout=TIMEOUT)
    # Once the interrupted call has failed, the restart is known: later calls
    # wait for the new process instead of failing.
    assert ferry.get(a.incr.remote(), timeout=TIMEOUT) == 1


def test_max_task_retries_resends_the_interrupted_call_to_the_restarted_actor(
        ferry, ra, tmp_path):
    a = ra.Counter.options(max_restarts=1).remote()
    first = ferry.get(a.pid.remote(), timeout=TIMEOUT)
    marker = str(tmp_path / "died")
    pid = ferry.get(a.die_once.options(max_task_retries=1).remote(marker), timeout=TIMEOUT)
    assert os.path.exists(marker), "the first attempt ran, and died"
    assert pid != first, "the retry ran in the new process"


def test_calls_queued_across_a_restart_run_in_submission_order(ferry, ra):
    a = ra.Counter.options(max_restarts=1, max_task_retries=-1).remote()
    assert ferry.get(a.incr.remote(), timeout=TIMEOUT) == 1
    dying = a.die.options(max_task_retries=0).remote()
    refs = [a.incr.remote() for _ in range(20)]
    with pytest.raises(ferry.exceptions.ActorDiedError):
        ferry.get(dying, timeout=TIMEOUT)
    # Each incr ran once, in order, in one process or the other; the new
    # process starts counting from 0 again.
    values = ferry.get(refs, timeout=TIMEOUT)
    restart_at = next((i for i, v in enumerate(values) if v == 1), len(values))
    assert values[:restart_at] == list(range(2, 2 + restart_at))
    assert values[restart_at:] == list(range(1, 1 + len(values) - restart_at))


def test_unbounded_restarts(ferry, ra):
    a = ra.Counter.options(max_restarts=-1, max_task_retries=-1).remote()
    pids = {ferry.get(a.pid.remote(), timeout=TIMEOUT)}
    for _ in range(3):
        _kill9(ferry, a)
        pids.add(ferry.get(a.pid.remote(), timeout=TIMEOUT))
    assert len(pids) == 4


def test_kill_without_no_restart_restarts_and_kill_by_default_ends_the_actor(ferry, ra):
    a = ra.Counter.options(max_restarts=-1).remote()
    old = ferry.get(a.pid.remote(), timeout=TIMEOUT)
    ferry.kill(a, no_restart=False)
    assert ferry.get(a.pid.remote(), timeout=TIMEOUT) != old
    ferry.kill(a)  # no_restart=True, Ray's default: even max_restarts=-1 ends it
    with pytest.raises(ferry.exceptions.ActorDiedError, match="ferry.kill"):
        ferry.get(a.pid.remote(), timeout=TIMEOUT)


def test_kill_without_no_restart_right_after_creation_restarts(ferry, ra):
    a = ra.Counter.options(max_restarts=1).remote(start=5)
    ferry.kill(a, no_restart=False)  # while it may still be starting
    assert ferry.get(a.incr.remote(), timeout=TIMEOUT) == 6


def test_an_actor_without_max_restarts_stays_dead(ferry, ra):
    a = ra.Counter.remote()
    _kill9(ferry, a)
    with pytest.raises(ferry.exceptions.ActorDiedError):
        ferry.get(a.incr.options(max_task_retries=3).remote(), timeout=TIMEOUT)


def test_constructor_arguments_are_kept_for_restarts_and_released_after(ferry, ra):
    from ferry._private import runtime
    rt_stats = runtime.current().stats
    holds_before = rt_stats()["value_holds"]
    start = ferry.put(100)
    a = ra.Counter.options(max_restarts=1, max_task_retries=1).remote(start)
    assert ferry.get(a.incr.remote(), timeout=TIMEOUT) == 101
    del start  # the actor's creation still holds it
    _kill9(ferry, a)
    assert ferry.get(a.incr.remote(), timeout=TIMEOUT) == 101, "re-read after the restart"
    ferry.kill(a)
    wait_for(lambda: rt_stats()["value_holds"] == holds_before, timeout=10)


def test_retry_exceptions_true_runs_the_method_again(ferry, ra):
    a = ra.Retrying.remote()
    # max_task_retries=2 in the decorator: the third attempt succeeds.
    assert ferry.get(a.flaky_any.remote(2), timeout=TIMEOUT) == 3


def test_retry_exceptions_list_retries_only_those_types(ferry, ra):
    a = ra.Retrying.remote()
    assert ferry.get(a.flaky_value_error.remote(1), timeout=TIMEOUT) == 2
    b = ra.Retrying.remote()
    with pytest.raises(KeyError, match="attempt 1"):
        ferry.get(b.flaky_value_error.remote(1, "KeyError"), timeout=TIMEOUT)
    assert ferry.get(b.flaky.remote(0), timeout=TIMEOUT) == 2, "KeyError ran once, not retried"


def test_retries_exhausted_raise_the_last_error(ferry, ra):
    a = ra.Retrying.remote()
    with pytest.raises(ValueError, match="attempt 3"):
        ferry.get(a.flaky_any.remote(5), timeout=TIMEOUT)


def test_retry_options_on_the_call_and_no_retry_without_max_task_retries(ferry, ra):
    a = ra.Counter.remote()
    with pytest.raises(ValueError, match="attempt 1"):
        ferry.get(a.flaky.options(retry_exceptions=True).remote(1), timeout=TIMEOUT)
    b = ra.Counter.remote()
    call = b.flaky.options(max_task_retries=1, retry_exceptions=[ValueError])
    assert ferry.get(call.remote(1), timeout=TIMEOUT) == 2
    c = ra.Counter.options(max_task_retries=1).remote()  # the actor's default
    assert ferry.get(c.flaky.options(retry_exceptions=True).remote(1), timeout=TIMEOUT) == 2


def test_bad_retry_options_raise_value_error(ferry, ra):
    with pytest.raises(ValueError, match="max_restarts"):
        ra.Counter.options(max_restarts=-2)
    with pytest.raises(ValueError, match="max_task_retries"):
        ra.Counter.options(max_task_retries=1.5)
    a = ra.Counter.remote()
    with pytest.raises(ValueError, match="retry_exceptions must be either a boolean"):
        a.flaky.options(retry_exceptions="ValueError")
    with pytest.raises(ValueError, match="retry_exceptions"):
        a.flaky.options(retry_exceptions=[ValueError, "x"])
    with pytest.raises(ValueError, match="max_task_retries"):
        ferry.method(max_task_retries=-5)


# --- RDT objects and restarts (Ray's retry scenarios) -----------------------

def test_rdt_objects_of_a_restarted_producer_are_lost(ferry, ra):
    p = ra.Producer.options(max_restarts=1, max_task_retries=1).remote()
    c = ra.Consumer.remote()
    ref = p.tensor.remote(4, 2.0)
    assert ferry.get(c.total.remote(ref), timeout=TIMEOUT) == 8.0
    _kill9(ferry, p)
    ferry.get(p.pid.remote(), timeout=TIMEOUT)  # restarted
    with pytest.raises(ferry.exceptions.ObjectLostError, match="restarted"):
        ferry.get(ref, timeout=TIMEOUT)
    with pytest.raises(ferry.exceptions.ObjectLostError):
        ferry.get(c.total.remote(ref), timeout=TIMEOUT)
    # New objects of the restarted producer move as usual.
    assert ferry.get(c.total.remote(p.tensor.remote(4, 3.0)), timeout=TIMEOUT) == 12.0


def _producer_and_consumer(ferry, ra, transport):
    p, c = ra.Producer.remote(), ra.Consumer.remote()
    if transport == "gloo":
        from ferry.experimental.collective import create_collective_group
        create_collective_group([p, c], backend="gloo", name=f"restarts-{uuid.uuid4().hex}")
    return p, c


@pytest.mark.parametrize("transport", ["nixl", "gloo"])
def test_rdt_producer_that_fails_then_succeeds_gives_consumers_the_retried_value(
        ferry, ra, transport):
    p, c = _producer_and_consumer(ferry, ra, transport)
    # Attempt 1 raises, attempt 2 returns 2.0s.
    ref = p.flaky_tensor.options(tensor_transport=transport).remote(4, 1)
    assert ferry.get(c.total.remote(ref), timeout=TIMEOUT) == 8.0


def test_retried_rdt_producer_value_fetched_through_the_object_store(ferry, ra):
    p = ra.Producer.remote()
    ref = p.flaky_tensor.remote(4, 1)
    assert ferry.get(ref, timeout=TIMEOUT).tolist() == [2.0] * 4


@pytest.mark.parametrize("transport", ["nixl", "gloo"])
def test_rdt_producer_retries_exhausted_raise_the_last_error(ferry, ra, transport):
    p, c = _producer_and_consumer(ferry, ra, transport)
    # max_task_retries=1: two attempts.
    ref = p.flaky_tensor.options(tensor_transport=transport).remote(4, 5)
    with pytest.raises(ValueError, match="attempt 2"):
        ferry.get(ref, timeout=TIMEOUT)
    with pytest.raises(ValueError, match="attempt 2"):
        ferry.get(c.total.remote(ref), timeout=TIMEOUT)


def test_rdt_producer_task_retried_after_its_actor_died_yields_a_fresh_object(
        ferry, ra, tmp_path):
    p = ra.Producer.options(max_restarts=1).remote()
    c = ra.Consumer.remote()
    first = ferry.get(p.pid.remote(), timeout=TIMEOUT)
    ref = p.tensor_after_dying_once.remote(2, str(tmp_path / "died"))
    total = ferry.get(c.total.remote(ref), timeout=TIMEOUT)
    new = ferry.get(p.pid.remote(), timeout=TIMEOUT)
    assert new != first
    assert total == 2.0 * new, "made by the retry, in the new process"
