"""put / get / wait, large values, get timeouts."""
import hashlib
import time

import numpy as np
import pytest

from conftest import GET_TIMEOUT

pytestmark = pytest.mark.usefixtures("ferry_module_session")

BIG_N = 14_000_000  # float64 -> 112 MB, above the "100+ MB" bar


def test_put_get_small_values():
    import ferry
    for value in (0, "text", b"\x00bytes", [1, (2, 3), {"k": None}], {"nested": {"x": 1.5}}):
        ref = ferry.put(value)
        assert isinstance(ref, ferry.ObjectRef)
        assert ferry.get(ref, timeout=GET_TIMEOUT) == value
    # get of a list of put refs
    refs = [ferry.put(i) for i in range(10)]
    assert ferry.get(refs, timeout=GET_TIMEOUT) == list(range(10))


def test_put_get_large_values():
    import ferry
    arr = np.random.default_rng(1).integers(0, 1 << 30, size=8_000_000, dtype=np.int64)  # 64 MB
    got = ferry.get(ferry.put(arr), timeout=GET_TIMEOUT)
    assert got.dtype == arr.dtype and got.shape == arr.shape
    np.testing.assert_array_equal(got, arr)

    blob = bytes(range(256)) * (300 * 1024)  # ~77 MB of bytes, not numpy
    assert ferry.get(ferry.put(blob), timeout=GET_TIMEOUT) == blob

    # A value that mixes a large array into small structure keeps both.
    mixed = {"meta": [1, 2], "arr": arr[:1_000_000]}
    got = ferry.get(ferry.put(mixed), timeout=GET_TIMEOUT)
    assert got["meta"] == [1, 2]
    np.testing.assert_array_equal(got["arr"], arr[:1_000_000])


def test_put_ref_is_usable_by_an_actor(actors):
    import ferry
    e = actors.Echo.remote()
    arr = np.arange(3_000_000, dtype=np.int64)
    ref = ferry.put(arr)
    assert ferry.get(e.sum.remote(ref), timeout=GET_TIMEOUT) == int(arr.sum())
    # the same ref can be used again (and by the driver) after the call
    assert ferry.get(e.sum.remote(ref), timeout=GET_TIMEOUT) == int(arr.sum())
    np.testing.assert_array_equal(ferry.get(ref, timeout=GET_TIMEOUT), arr)


def test_100mb_numpy_as_argument_and_return(actors):
    import ferry
    e = actors.Echo.remote()
    x = np.random.default_rng(0).standard_normal(BIG_N)
    assert x.nbytes > 100 * 10**6

    # argument only: the actor sees the same array
    shape, dtype, digest, last = ferry.get(e.array_stats.remote(x), timeout=GET_TIMEOUT)
    assert tuple(shape) == x.shape and dtype == "float64" and last == float(x[-1])
    assert digest == hashlib.sha256(x.tobytes()).hexdigest()

    # argument and return
    y = ferry.get(e.echo_array.remote(x), timeout=GET_TIMEOUT)
    assert isinstance(y, np.ndarray) and y.dtype == x.dtype and y.shape == x.shape
    np.testing.assert_array_equal(y, x)
    del y

    # return only: made in the worker
    z = ferry.get(e.make_array.remote(BIG_N, 7), timeout=GET_TIMEOUT)
    assert z.nbytes > 100 * 10**6
    np.testing.assert_array_equal(z, np.arange(BIG_N, dtype=np.int64) * 7)


def test_get_timeout_raises_get_timeout_error_in_bounded_time(actors):
    import ferry
    g = actors.Gate.remote()
    assert ferry.get(g.ping.remote(), timeout=GET_TIMEOUT) == "pong"  # actor is up
    blocked = g.wait_release.remote(GET_TIMEOUT)

    t0 = time.monotonic()
    with pytest.raises(ferry.exceptions.GetTimeoutError) as ei:
        ferry.get(blocked, timeout=0.5)
    elapsed = time.monotonic() - t0
    assert isinstance(ei.value, TimeoutError)
    assert 0.45 <= elapsed < 5.0, elapsed

    # A list with one pending ref times out too (ping runs in the second slot).
    with pytest.raises(ferry.exceptions.GetTimeoutError):
        ferry.get([g.ping.remote(), blocked], timeout=0.3)

    # The ref survives the timeouts: release the call and fetch it.
    assert ferry.get(g.release.remote(), timeout=GET_TIMEOUT) is True
    assert ferry.get(blocked, timeout=GET_TIMEOUT) is True


def test_wait_splits_ready_and_not_ready(actors):
    import ferry
    fast = actors.Echo.remote()
    gates = [actors.Gate.remote(), actors.Gate.remote()]
    for g in gates:
        assert ferry.get(g.ping.remote(), timeout=GET_TIMEOUT) == "pong"
    fast_refs = [fast.slow_value.remote(f"fast-{i}", 0.0) for i in range(3)]
    slow_refs = [g.wait_release.remote(GET_TIMEOUT) for g in gates]
    refs = [slow_refs[0], fast_refs[0], fast_refs[1], slow_refs[1], fast_refs[2]]

    ready, not_ready = ferry.wait(refs, num_returns=3, timeout=GET_TIMEOUT)
    assert len(ready) == 3 and len(not_ready) == 2
    assert sorted(ferry.get(list(ready), timeout=GET_TIMEOUT)) == ["fast-0", "fast-1", "fast-2"]

    # Asking for more than can be ready returns at the timeout with what is ready.
    t0 = time.monotonic()
    ready, not_ready = ferry.wait(refs, num_returns=5, timeout=0.3)
    elapsed = time.monotonic() - t0
    assert len(ready) == 3 and len(not_ready) == 2
    assert 0.25 <= elapsed < 5.0, elapsed

    # num_returns=1 returns as soon as one is ready (here: three already are).
    ready, not_ready = ferry.wait(refs, num_returns=1, timeout=GET_TIMEOUT)
    assert len(ready) == 1 and len(not_ready) == 4

    # Release one slow call: now four are ready, one still pending.
    assert ferry.get(gates[0].release.remote(), timeout=GET_TIMEOUT) is True
    ready, not_ready = ferry.wait(refs, num_returns=4, timeout=GET_TIMEOUT)
    assert len(ready) == 4 and len(not_ready) == 1
    assert ferry.get(list(ready), timeout=GET_TIMEOUT).count(True) == 1

    # Release the other; everything becomes ready, without a timeout argument.
    assert ferry.get(gates[1].release.remote(), timeout=GET_TIMEOUT) is True
    ready, not_ready = ferry.wait(refs, num_returns=5)
    assert len(ready) == 5 and len(not_ready) == 0


def test_wait_default_num_returns_is_one(actors):
    import ferry
    g = actors.Gate.remote()
    e = actors.Echo.remote()
    slow = g.wait_release.remote(GET_TIMEOUT)
    quick = e.ping.remote()
    ready, not_ready = ferry.wait([slow, quick], timeout=GET_TIMEOUT)
    assert len(ready) == 1 and len(not_ready) == 1
    assert ferry.get(ready[0], timeout=GET_TIMEOUT) == "pong"
    ferry.get(g.release.remote(), timeout=GET_TIMEOUT)
    assert ferry.get(slow, timeout=GET_TIMEOUT) is True
