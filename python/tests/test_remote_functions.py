"""Remote functions: @ferry.remote on a function, run on pooled worker
processes that the Head lends with the task's resources (Ray's semantics:
num_returns, num_cpus, max_retries, retry_exceptions, refs in and out,
nested calls)."""
import os

import pytest

from conftest import fresh_runtime, wait_for

TIMEOUT = 60
CPUS = 4


@pytest.fixture(scope="module")
def ferry():
    ferry = fresh_runtime(num_cpus=CPUS)
    try:
        yield ferry
    finally:
        ferry.shutdown()


@pytest.fixture(scope="module")
def rf():
    import remote_fns
    return remote_fns


def test_a_remote_function_returns_its_value_and_several_refs(ferry, rf):
    assert ferry.get(rf.add.remote(1, 2), timeout=TIMEOUT) == 3
    lo, hi = rf.split.remote(7)
    assert ferry.get([lo, hi], timeout=TIMEOUT) == [3, 4]
    a, b, c = rf.add.options(num_returns=3).remote((1, 2), (3,))
    assert ferry.get([a, b, c], timeout=TIMEOUT) == [1, 2, 3]


def test_refs_as_arguments_and_in_returns(ferry, rf):
    x = ferry.put(40)
    assert ferry.get(rf.add.remote(x, rf.add.remote(1, 1)), timeout=TIMEOUT) == 42
    refs = [rf.add.remote(i, 0) for i in range(5)]
    assert ferry.get(rf.total.remote(refs), timeout=TIMEOUT) == 10, "nested refs travel as refs"
    made = ferry.get(rf.make_refs.remote(3), timeout=TIMEOUT)
    assert ferry.get(made, timeout=TIMEOUT) == [0, 1, 2]


def test_workers_are_pooled_not_started_per_call(ferry, rf):
    pids = {ferry.get(rf.pid.remote(), timeout=TIMEOUT) for _ in range(20)}
    assert len(pids) == 1, "sequential calls reuse one idle worker"
    many = set(ferry.get([rf.pid.remote() for _ in range(40)], timeout=TIMEOUT))
    assert len(many) <= CPUS, "at most one worker per CPU runs tasks at once"
    assert os.getpid() not in many


def test_tasks_beyond_the_cpus_wait_for_a_free_one(ferry, rf, tmp_path):
    release = str(tmp_path / "release")

    def started():
        try:
            with open(release + ".started") as f:
                return len(f.read().split())
        except FileNotFoundError:
            return 0

    held = [rf.hold.options(num_cpus=2).remote(release) for _ in range(3)]
    assert wait_for(lambda: started() == 2, TIMEOUT)
    ready, _ = ferry.wait(held, num_returns=1, timeout=0.3)
    assert ready == [] and started() == 2, "two tasks of 2 CPUs fill 4 CPUs; the third waits"
    open(release, "w").close()
    assert len(ferry.get(held, timeout=TIMEOUT)) == 3
    assert started() == 3


def test_nested_calls_from_tasks_and_actors(ferry, rf):
    assert ferry.get(rf.fan_out.remote(5), timeout=TIMEOUT) == 20
    caller = rf.Caller.remote()
    assert ferry.get(caller.add_via_task.remote(2, 3), timeout=TIMEOUT) == 5


def test_a_task_waiting_in_get_lends_its_cpu_to_the_tasks_it_waits_for(ferry, rf):
    # Six levels of tasks, each waiting for the next, on 4 CPUs: the waiting
    # ones must give their CPU back (as in Ray), or the fifth never starts.
    assert ferry.get(rf.depth.remote(CPUS + 2), timeout=TIMEOUT) == CPUS + 2


def test_an_exception_reaches_the_caller_with_its_type(ferry, rf):
    with pytest.raises(KeyError, match="boom"):
        ferry.get(rf.fail.remote("boom"), timeout=TIMEOUT)
    # A failed argument fails the consumer without running it.
    with pytest.raises(KeyError, match="upstream"):
        ferry.get(rf.add.remote(rf.fail.remote("upstream"), 1), timeout=TIMEOUT)


def test_a_task_whose_worker_dies_is_retried_on_another_worker(ferry, rf, tmp_path):
    marker = str(tmp_path / "attempts")
    assert ferry.get(rf.die_until.remote(marker, 3), timeout=TIMEOUT) == 3, \
        "Ray's default max_retries=3 covers two deaths"
    again = str(tmp_path / "again")
    with pytest.raises(ferry.exceptions.ActorDiedError, match="running task die_until died"):
        ferry.get(rf.die_until.options(max_retries=0).remote(again, 2), timeout=TIMEOUT)
    # The pool recovers: later tasks run.
    assert ferry.get(rf.add.remote(1, 1), timeout=TIMEOUT) == 2


def test_retry_exceptions(ferry, rf, tmp_path):
    marker = str(tmp_path / "raised")
    with pytest.raises(ConnectionError, match="flaky attempt 1"):
        ferry.get(rf.raise_until.remote(marker, 3), timeout=TIMEOUT)
    retried = str(tmp_path / "retried")
    fn = rf.raise_until.options(retry_exceptions=[ConnectionError], max_retries=5)
    assert ferry.get(fn.remote(retried, 3), timeout=TIMEOUT) == 3
    other = str(tmp_path / "other")
    with pytest.raises(ConnectionError):
        ferry.get(rf.raise_until.options(retry_exceptions=[KeyError]).remote(other, 3),
                  timeout=TIMEOUT)


def test_async_functions_run_to_completion(ferry, rf):
    assert ferry.get(rf.async_add.remote(2, 2), timeout=TIMEOUT) == 4


def test_bad_uses_fail_clearly(ferry, rf):
    with pytest.raises(TypeError, match=r"\.remote\(\)"):
        rf.add(1, 2)
    with pytest.raises(TypeError, match="bad arguments for remote function 'add'"):
        rf.add.remote(1)
    with pytest.raises(ValueError, match="only supported on actor methods"):
        rf.add.options(tensor_transport="nixl")
    with pytest.raises(ValueError, match="max_retries"):
        rf.add.options(max_retries=-2)
    # Options stack: a strategy set once survives another .options().
    pinned = rf.pid.options(scheduling_strategy="SPREAD").options(num_cpus=1)
    assert isinstance(ferry.get(pinned.remote(), timeout=TIMEOUT), int)
    with pytest.raises(ValueError, match="cannot run the task"):
        ferry.get(rf.add.options(num_cpus=CPUS + 1).remote(1, 1), timeout=TIMEOUT)
