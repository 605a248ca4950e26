"""The bad-input matrix: one parametrized test.

Each case feeds ferry something wrong and asserts a clear, typed error whose
message tells the user what to do (or, where the input is legal after all,
that it works). After every case the test checks that the runtime keeps
working: an ordinary actor call and an RDT transfer succeed, on the same
runtime (only the cases marked `restarts` may replace it, and the test
restores a fresh session for them), and error paths left no owned object
behind in the driver.
"""
import gc
import re
import threading
import types

import numpy as np
import pytest

from conftest import GET_TIMEOUT, wait_for

torch = pytest.importorskip("torch")

# A bad input must fail at once or within this, never hang.
ERROR_DEADLINE = 10.0
HUGE_ELEMENTS = 1 << 27  # int64 -> 1 GiB


class Session:
    """The module's runtime and actors; rebuilt after a case that shut it down."""

    def __init__(self):
        self.rt = None

    def ensure(self):
        import ferry
        from ferry._private import runtime
        from ferry.experimental.collective import create_collective_group
        if self.rt is not None and runtime._runtime is self.rt:
            return self
        if ferry.is_initialized():  # an auto-init after a shutdown case
            ferry.shutdown()
        ferry.init()
        self.rt = runtime.current()
        import ferry_test_actors as A
        import hardening_actors as H
        self.echo = A.Echo.remote()
        self.src, self.sink = H.TensorSource.remote(), H.TensorSink.remote()
        ferry.get([self.echo.ping.remote(), self.src.ping.remote(), self.sink.ping.remote()],
                  timeout=GET_TIMEOUT)
        create_collective_group([self.src, self.sink], backend="gloo", name="bad_inputs")
        return self

    def is_current(self):
        from ferry._private import runtime
        return runtime._runtime is self.rt


@pytest.fixture(scope="module")
def session():
    import ferry
    if ferry.is_initialized():
        ferry.shutdown()
    s = Session()
    try:
        yield s
    finally:
        ferry.shutdown()


def _raises(exc_type, *needles):
    """pytest.raises(exc_type) whose message must contain every needle (regexes)."""
    class _Check:
        def __enter__(self):
            self.cm = pytest.raises(exc_type)
            self.info = self.cm.__enter__()
            return self.info

        def __exit__(self, *exc):
            suppressed = self.cm.__exit__(*exc)
            text = str(self.info.value)
            for needle in needles:
                assert re.search(needle, text), f"{needle!r} not in the message: {text[-2000:]}"
            return suppressed
    return _Check()


# --- the cases ---------------------------------------------------------------

def invalid_transport_name(s):
    import ferry
    with _raises(ValueError, "tensor_transport", "valid", "gloo"):
        @ferry.method(tensor_transport="glooo")
        def f(self):
            return None
    with _raises(ValueError, "tensor_transport", "valid", "gloo"):
        s.src.plain.options(tensor_transport="tcp")
    with _raises(ValueError, "valid", "gloo"):
        s.src.plain.options(tensor_transport=3)
    with _raises(ValueError, "valid", "object_store"):
        ferry.get(ferry.put(1), timeout=GET_TIMEOUT, _tensor_transport="bogus")


def transport_missing_from_this_build(s):
    # Named by the guide, not built here: refused at .remote(), naming what is.
    for name in ("cuda_ipc", "nccl"):
        with _raises(NotImplementedError, name, "not available", "available.*gloo"):
            s.src.plain.options(tensor_transport=name).remote(1)


def _device_case(device, transport="gloo"):
    def case(s):
        import ferry
        ref = s.src.make_on.options(tensor_transport=transport).remote(device, 4)
        # The producer refuses the tensor: a system error in the guide's terms,
        # whose message says the transport carries CPU tensors.
        with _raises(ferry.exceptions.TaskError, transport, "CPU"):
            ferry.get(ref, timeout=ERROR_DEADLINE, _tensor_transport="object_store")
        with _raises(ferry.exceptions.TaskError, transport, "CPU"):
            ferry.get(s.sink.check.remote(ref, 1), timeout=ERROR_DEADLINE)
        if transport != "gloo":  # one-sided: get pulls, and reports the same error
            with _raises(ferry.exceptions.TaskError, transport, "CPU"):
                ferry.get(ref, timeout=ERROR_DEADLINE)
    case.__name__ = f"{device}_tensor_over_{transport}"
    return case


def put_with_a_collective_transport(s):
    import ferry
    # put has no group to move through: only one-sided transports keep tensors in place.
    with _raises(ValueError, "one-sided", "gloo"):
        ferry.put(torch.ones(4), _tensor_transport="gloo")
    with _raises(ValueError, "valid"):
        ferry.put(torch.ones(4), _tensor_transport="bogus")


def non_tensor_return_with_tensor_transport(s):
    import ferry
    # An ordinary value: get needs no _tensor_transport, a consumer receives it.
    value = {"x": [1, 2.5], "s": "text", "arr": np.arange(3)}
    got = ferry.get(s.src.plain.remote(value), timeout=GET_TIMEOUT)
    assert got["x"] == [1, 2.5] and got["s"] == "text"
    np.testing.assert_array_equal(got["arr"], np.arange(3))
    assert ferry.get(s.sink.first.remote(s.src.plain.remote([7.0])), timeout=GET_TIMEOUT) == 7.0
    assert ferry.get(s.src.plain.remote(None), timeout=GET_TIMEOUT) is None
    assert ferry.get(s.src.stats.remote(), timeout=GET_TIMEOUT)["num_objects"] == 0


def ref_of_dead_actor(s):
    import ferry
    import ferry_test_actors as A
    victim = A.Echo.remote()
    assert ferry.get(victim.ping.remote(), timeout=GET_TIMEOUT) == "pong"
    pending = victim.slow_value.remote("never", GET_TIMEOUT)
    ferry.kill(victim)
    with _raises(ferry.exceptions.ActorDiedError, "died|killed"):
        ferry.get(pending, timeout=ERROR_DEADLINE)
    # Passed on to a live actor: the dependent call fails the same way.
    with _raises(ferry.exceptions.ActorDiedError, "died|killed"):
        ferry.get(s.echo.inc.remote(pending), timeout=ERROR_DEADLINE)
    with _raises(ferry.exceptions.ActorDiedError, "ferry.kill"):
        ferry.get(victim.ping.remote(), timeout=ERROR_DEADLINE)


def rdt_ref_of_dead_producer(s):
    import ferry
    import hardening_actors as H
    from ferry.experimental.collective import create_collective_group, destroy_collective_group
    victim = H.TensorSource.remote()
    create_collective_group([victim, s.sink], backend="gloo", name="victim")
    try:
        ref = victim.make.remote(64, 2)
        assert ferry.get(s.sink.check.remote(ref, 2), timeout=GET_TIMEOUT) == (16, True)
        ferry.kill(victim)
        with _raises(ferry.exceptions.ActorDiedError):
            ferry.get(s.sink.check.remote(ref, 2), timeout=ERROR_DEADLINE)
        with _raises(ferry.exceptions.FerryError):
            ferry.get(ref, timeout=ERROR_DEADLINE, _tensor_transport="object_store")
    finally:
        destroy_collective_group("victim")


def _rebuilt(ref):
    """Id, owner address and owner id of a ref: enough to rebuild it later."""
    return ref.binary(), ref.owner_address, bytes.fromhex(ref.owner_id)


def freed_object(s):
    import ferry
    rt = ferry._private.runtime.current()
    put_ref = ferry.put(np.arange(10))
    task_ref = s.echo.inc.remote(1)
    assert ferry.get(task_ref, timeout=GET_TIMEOUT) == 2
    rdt_ref = s.src.make.remote(64, 5)
    assert ferry.get(s.sink.check.remote(rdt_ref, 5), timeout=GET_TIMEOUT) == (16, True)
    saved = [_rebuilt(r) for r in (put_ref, task_ref, rdt_ref)]
    del put_ref, task_ref, rdt_ref
    gc.collect()
    # The RDT object is freed in its producer too (FREE_OBJECTS is one-way).
    assert wait_for(lambda: ferry.get(s.src.stats.remote(), timeout=GET_TIMEOUT)["num_objects"] == 0,
                    ERROR_DEADLINE)
    for oid, addr, owner in saved:
        again, _ = rt.make_ref(oid, addr, owner)
        with _raises(ferry.exceptions.ObjectLostError, "freed"):
            ferry.get(again, timeout=ERROR_DEADLINE, _tensor_transport="object_store")
        with _raises(ferry.exceptions.ObjectLostError, "freed"):
            ferry.get(s.echo.echo.remote(again), timeout=ERROR_DEADLINE)


def get_of_two_sided_rdt_ref(s):
    import ferry
    ref = s.src.make.remote(64, 9)
    with _raises(ValueError, "_tensor_transport", "object_store", "gloo"):
        ferry.get(ref, timeout=GET_TIMEOUT)
    # What the message says to do works.
    t = ferry.get(ref, timeout=GET_TIMEOUT, _tensor_transport="object_store")
    assert t.shape == (16,) and bool((t == 9).all())


def huge_value(s):
    import ferry
    x = np.arange(HUGE_ELEMENTS, dtype=np.int64)
    ref = ferry.put(x)
    y = ferry.get(ref, timeout=GET_TIMEOUT)
    assert y.nbytes == 1 << 30 and y.dtype == np.int64
    assert np.array_equal(x, y)
    del y
    n = HUGE_ELEMENTS
    assert ferry.get(s.echo.sum.remote(ref), timeout=GET_TIMEOUT) == n * (n - 1) // 2


def empty_values(s):
    import ferry
    values = [b"", "", [], {}, (), None, np.empty(0), np.empty((3, 0), dtype=np.int32),
              torch.empty(0), torch.empty((2, 0), dtype=torch.int64)]

    def same(a, b):
        if isinstance(a, np.ndarray):
            return isinstance(b, np.ndarray) and a.shape == b.shape and a.dtype == b.dtype
        if isinstance(a, torch.Tensor):
            return isinstance(b, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype
        return type(a) is type(b) and a == b
    for v in values:
        assert same(ferry.get(ferry.put(v), timeout=GET_TIMEOUT), v), v
        assert same(ferry.get(s.echo.echo_array.remote(v), timeout=GET_TIMEOUT), v), v
    # An empty tensor over gloo, and through the object store.
    ref = s.src.make.remote(0, 1)
    assert ferry.get(s.sink.check.remote(ref, 1), timeout=GET_TIMEOUT) == (0, True)
    assert ferry.get(ref, timeout=GET_TIMEOUT, _tensor_transport="object_store").numel() == 0


def unpicklable_arguments(s):
    import ferry
    import ferry_test_actors as A
    gen = (i for i in range(3))
    with _raises(TypeError, "pickle", "lock"):
        s.echo.echo.remote(threading.Lock())
    with _raises(TypeError, "pickle", "generator"):
        s.echo.echo.remote(gen)
    with _raises(TypeError, "pickle", "lock"):
        s.echo.echo.remote(1, key={"nested": [threading.Lock()]})
    with _raises(TypeError, "pickle", "lock"):
        A.Counter.remote(threading.Lock())
    with _raises(TypeError, "pickle", "lock"):
        ferry.put(threading.Lock())
    # An unpicklable return value: the task's error, not a hang or a crash.
    with _raises(ferry.exceptions.TaskError, "pickle", "lock"):
        ferry.get(s.src.unpicklable_result.remote(), timeout=ERROR_DEADLINE)


def bad_call_arguments(s):
    with _raises(TypeError, "add", "missing.*'y'"):
        s.echo.add.remote(1)
    with _raises(TypeError, "add"):
        s.echo.add.remote(1, 2, 3)
    with _raises(AttributeError, "no method 'nope'"):
        s.echo.nope.remote()
    with _raises(TypeError, r"\.remote\("):
        s.echo.add(1, 2)


def calls_after_shutdown(s):
    import ferry
    old_echo, old_ref = s.echo, ferry.put("kept")
    ferry.shutdown()
    ferry.shutdown()  # idempotent
    assert not ferry.is_initialized()
    # A handle from the ended session: a typed error that says why.
    with _raises(ferry.exceptions.ActorDiedError, r"shut ?down|ferry\.init|session"):
        ferry.get(old_echo.ping.remote(), timeout=ERROR_DEADLINE)
    with _raises(ferry.exceptions.ObjectLostError):
        ferry.get(old_ref, timeout=ERROR_DEADLINE)


def double_init(s):
    import ferry
    with _raises(RuntimeError, "already", r"ferry\.shutdown\(\)"):
        ferry.init()
    with _raises(RuntimeError, "already", r"ferry\.shutdown\(\)"):
        ferry.init(address="10.0.0.1:6379")


def init_after_shutdown(s):
    import ferry
    ferry.shutdown()
    ferry.init()
    assert ferry.is_initialized()
    with _raises(RuntimeError, "already"):
        ferry.init()


def get_of_non_refs(s):
    import ferry
    ref = ferry.put(1)
    for bad in (5, None, "abc", [ref, 5], {"a": ref}, object()):
        with _raises(TypeError, "ObjectRef"):
            ferry.get(bad, timeout=GET_TIMEOUT)
    with _raises(TypeError, "ObjectRef"):
        ferry.wait([ref, 5], timeout=GET_TIMEOUT)
    with _raises(TypeError, "list.*ObjectRef|ObjectRef.*list"):
        ferry.wait(ref, timeout=GET_TIMEOUT)
    with _raises(TypeError, "ObjectRef"):
        ferry.put(ref)
    with _raises(TypeError, "actor handle"):
        ferry.kill(ref)


def negative_timeouts(s):
    import ferry
    ref = ferry.put(1)
    with _raises(ValueError, "timeout"):
        ferry.get(ref, timeout=-1)
    with _raises(ValueError, "timeout"):
        ferry.wait([ref], timeout=-0.5)
    with _raises(ValueError, "timeout"):
        ferry.experimental.wait_tensor_freed(torch.ones(1), timeout=-1)


def wait_num_returns_out_of_range(s):
    import ferry
    refs = [ferry.put(i) for i in range(2)]
    for n in (3, -1):
        with _raises(ValueError, "num_returns", "between 0 and 2"):
            ferry.wait(refs, num_returns=n, timeout=GET_TIMEOUT)


CASES = [
    invalid_transport_name,
    transport_missing_from_this_build,
    pytest.param(_device_case("cuda"), marks=pytest.mark.skipif(
        not torch.cuda.is_available(), reason="no CUDA device on this machine"),
        id="cuda_tensor_over_gloo"),
    _device_case("meta"),
    _device_case("meta", "nixl"),
    _device_case("meta", "shm"),
    put_with_a_collective_transport,
    non_tensor_return_with_tensor_transport,
    ref_of_dead_actor,
    rdt_ref_of_dead_producer,
    freed_object,
    get_of_two_sided_rdt_ref,
    huge_value,
    empty_values,
    unpicklable_arguments,
    bad_call_arguments,
    calls_after_shutdown,
    double_init,
    init_after_shutdown,
    get_of_non_refs,
    negative_timeouts,
    wait_num_returns_out_of_range,
]
RESTARTS = {"calls_after_shutdown", "init_after_shutdown"}


def _id(case):
    return case.__name__ if isinstance(case, types.FunctionType) else None


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_bad_input(session, case):
    import ferry
    s = session.ensure()
    rt = s.rt
    gc.collect()
    owned_before = rt.stats()["owned_objects"]
    case(s)
    if case.__name__ in RESTARTS:
        s = session.ensure()
    else:
        assert session.is_current(), f"{case.__name__} replaced the runtime"
    # The runtime keeps working: a plain call and an RDT transfer.
    assert ferry.get(s.echo.add.remote(20, 22), timeout=GET_TIMEOUT) == 42
    ref = s.src.make.remote(4096, 6)
    assert ferry.get(s.sink.check.remote(ref, 6), timeout=GET_TIMEOUT) == (1024, True)
    del ref
    # Error paths keep no object alive in the driver.
    if s.rt is rt:
        gc.collect()
        assert wait_for(lambda: s.rt.stats()["owned_objects"] <= owned_before, ERROR_DEADLINE), (
            f"{case.__name__}: the driver owns {s.rt.stats()['owned_objects']} objects, "
            f"{owned_before} before")
