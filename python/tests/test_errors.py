"""Application errors, killed and crashed actors."""
import time

import pytest

from conftest import EXIT_DEADLINE, GET_TIMEOUT, kill_leftovers, pid_alive, wait_for

pytestmark = pytest.mark.usefixtures("ferry_module_session")

# A dead actor must be reported promptly, not after some long RPC timeout.
DIED_DEADLINE = 10.0


def _text_of(exc):
    """All the text an exception carries: str() plus any string attributes."""
    parts = [str(exc)]
    for value in vars(exc).values():
        if isinstance(value, str):
            parts.append(value)
    return "\n".join(parts)


def test_task_error_is_the_users_exception_with_remote_traceback(actors):
    import ferry
    e = actors.Echo.remote()
    with pytest.raises(ValueError) as ei:
        ferry.get(e.fail.remote("boom-42"), timeout=GET_TIMEOUT)
    err = ei.value
    assert isinstance(err, ferry.exceptions.TaskError)
    assert isinstance(err, ferry.exceptions.FerryError)
    text = _text_of(err)
    assert "boom-42" in text
    assert "_inner_fail" in text, "remote traceback should name the frame that raised"
    assert "Traceback" in text or "File " in text


def test_except_user_exception_class_works(actors):
    import ferry
    e = actors.Echo.remote()
    try:
        ferry.get(e.fail_custom.remote("custom-7"), timeout=GET_TIMEOUT)
    except actors.MyError as err:  # the user's own class, defined in a module
        assert isinstance(err, ferry.exceptions.TaskError)
        assert "custom-7" in _text_of(err)
    else:
        pytest.fail("get did not raise")


def test_actor_stays_alive_and_keeps_state_after_an_error(actors):
    import ferry
    c = actors.Counter.remote(0)
    e = actors.Echo.remote()
    assert ferry.get(c.incr.remote(), timeout=GET_TIMEOUT) == 1
    pid = ferry.get(e.pid.remote(), timeout=GET_TIMEOUT)
    for i in range(3):
        with pytest.raises(ValueError):
            ferry.get(e.fail.remote(f"again-{i}"), timeout=GET_TIMEOUT)
    assert ferry.get(e.ping.remote(), timeout=GET_TIMEOUT) == "pong"
    assert ferry.get(e.pid.remote(), timeout=GET_TIMEOUT) == pid  # same process, not a restart
    assert ferry.get(e.add.remote(2, 3), timeout=GET_TIMEOUT) == 5


def test_error_travels_to_dependent_tasks(actors):
    import ferry
    a = actors.Echo.remote()
    b = actors.Echo.remote()
    failed = a.fail.remote("upstream-9")
    dependent = b.inc.remote(failed)
    with pytest.raises(ValueError) as ei:
        ferry.get(dependent, timeout=GET_TIMEOUT)
    assert isinstance(ei.value, ferry.exceptions.TaskError)
    assert "upstream-9" in _text_of(ei.value)
    # b did not die because its argument failed
    assert ferry.get(b.inc.remote(1), timeout=GET_TIMEOUT) == 2


def _assert_actor_died(call):
    """call() submits and/or gets; ActorDiedError must come within DIED_DEADLINE."""
    import ferry
    t0 = time.monotonic()
    with pytest.raises(ferry.exceptions.ActorDiedError):
        ferry.get(call(), timeout=GET_TIMEOUT)
    elapsed = time.monotonic() - t0
    assert elapsed < DIED_DEADLINE, f"ActorDiedError took {elapsed:.1f}s"


def test_kill_ends_the_process_and_later_calls_raise_actor_died(actors):
    import ferry
    victim = actors.Echo.remote()
    bystander = actors.Echo.remote()
    pid = ferry.get(victim.pid.remote(), timeout=GET_TIMEOUT)
    assert pid_alive(pid)
    try:
        ferry.kill(victim)
        assert wait_for(lambda: not pid_alive(pid), EXIT_DEADLINE), f"worker {pid} still alive after kill"
        _assert_actor_died(lambda: victim.ping.remote())
        _assert_actor_died(lambda: victim.add.remote(1, 2))
    finally:
        kill_leftovers([pid])
    assert ferry.get(bystander.ping.remote(), timeout=GET_TIMEOUT) == "pong"


def test_crashing_actor_fails_pending_and_later_calls(actors):
    import ferry
    victim = actors.Echo.remote()
    bystander = actors.Counter.remote(0)
    pid = ferry.get(victim.pid.remote(), timeout=GET_TIMEOUT)
    try:
        crash = victim.crash.remote()
        pending = [victim.ping.remote() for _ in range(3)]  # queued behind the crash
        _assert_actor_died(lambda: crash)
        for ref in pending:
            _assert_actor_died(lambda ref=ref: ref)
        _assert_actor_died(lambda: victim.ping.remote())  # submitted after the death
        assert wait_for(lambda: not pid_alive(pid), EXIT_DEADLINE), f"worker {pid} still alive"
    finally:
        kill_leftovers([pid])
    assert ferry.get(bystander.incr.remote(), timeout=GET_TIMEOUT) == 1


def test_actor_died_error_is_a_ferry_error(actors):
    import ferry
    victim = actors.Echo.remote()
    pid = ferry.get(victim.pid.remote(), timeout=GET_TIMEOUT)
    try:
        ferry.kill(victim)
        with pytest.raises(ferry.exceptions.FerryError) as ei:
            ferry.get(victim.ping.remote(), timeout=GET_TIMEOUT)
        assert isinstance(ei.value, ferry.exceptions.ActorDiedError)
        assert not isinstance(ei.value, ferry.exceptions.TaskError)
    finally:
        kill_leftovers([pid])
