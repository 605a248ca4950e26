"""Direct tensor transport over Gloo: transport names, tensor stores,
passing refs, the mutability warning, get, collective groups,
wait_tensor_freed, freeing and application errors.

One runtime and four actors serve the whole module (a worker that imports
torch takes seconds to start): `a`, `b`, `c` form the collective group
"main"; `x` (whose decorator spells "GLOO") belongs to no group unless a test
makes one. Tests leave the groups as they found them, and wait (with a
deadline) for the shared stores to be empty where they count objects.
"""
import gc
import os
import time
import types
import warnings

import pytest

from conftest import GET_TIMEOUT, wait_for

pytestmark = [
    pytest.mark.usefixtures("ferry_module_session"),
    # Tests that compare the producer's view with a receiver's pass one ref to
    # both on purpose; the warning itself is tested below with pytest.warns.
    pytest.mark.filterwarnings("ignore:.*mutable:UserWarning"),
]

torch = pytest.importorskip("torch")

# A failure must come back within this, never as a hang.
ERROR_DEADLINE = 10.0
VALID_TRANSPORTS = ("object_store", "gloo", "nccl", "nixl", "shm", "cuda_ipc")


@pytest.fixture(scope="module")
def rdt():
    import rdt_test_actors
    return rdt_test_actors


@pytest.fixture(scope="module")
def cluster(ferry_module_session, rdt):
    import ferry
    from ferry.experimental.collective import create_collective_group
    a, b, c = rdt.Producer.remote(), rdt.Producer.remote(), rdt.Producer.remote()
    x = rdt.ShoutingProducer.remote()
    ferry.get([h.ping.remote() for h in (a, b, c, x)], timeout=GET_TIMEOUT)
    group = create_collective_group([a, b, c], backend="gloo", name="main")
    # A gloo method needs its actor in a gloo group, even when its result is
    # only fetched through the object store (as in Ray).
    create_collective_group([x], backend="gloo", name="shouting")
    return types.SimpleNamespace(a=a, b=b, c=c, x=x, group=group)


def _span_bytes(t):
    if t.numel() == 0:
        return 0
    extent = 1 + sum((n - 1) * st for n, st in zip(t.shape, t.stride()))
    return extent * t.element_size()


def _stats(actor):
    import ferry
    return ferry.get(actor.stats.remote(), timeout=GET_TIMEOUT)


def _wait_store_empty(*actors, timeout=GET_TIMEOUT):
    """Polls each actor's tensor_store_stats() until it holds no object.
    Collects garbage first: a pytest.raises ExceptionInfo kept in a test's
    frame forms a cycle that keeps that test's ObjectRefs alive."""
    gc.collect()
    last = {}
    for actor in actors:
        ok = wait_for(lambda: _stats(actor)["num_objects"] == 0, timeout, interval=0.05)
        last[repr(actor)] = _stats(actor)
        assert ok, f"tensor store not empty: {last}"


def _assert_tensors_equal(got, want):
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert tuple(got.shape) == tuple(want.shape), (got.shape, want.shape)
    assert torch.equal(got, want)


def _assert_values_equal(rdt, got, want):
    assert type(got).__name__ == type(want).__name__
    got_t, want_t = rdt.tensors_in(got), rdt.tensors_in(want)
    assert [p for p, _ in got_t] == [p for p, _ in want_t]
    for (_, g), (_, w) in zip(got_t, want_t):
        _assert_tensors_equal(g, w)


def _expected_sum(rdt, kind="single", seed=0):
    return float(rdt.make_value(kind, seed).double().sum())


# --- 1. tensor_transport names ------------------------------------------------

def test_unknown_transport_is_a_value_error_at_decoration_time_listing_valid_names():
    import ferry
    with pytest.raises(ValueError) as ei:
        class _Bad:  # noqa: F841  (the decorator must raise while the class body runs)
            @ferry.method(tensor_transport="carrier_pigeon")
            def f(self):
                return 1
    msg = str(ei.value)
    assert "carrier_pigeon" in msg
    for name in VALID_TRANSPORTS:
        assert name in msg, f"{name!r} missing from {msg!r}"


def test_transport_names_are_case_insensitive(cluster, rdt):
    import ferry
    # ShoutingProducer.make is decorated with tensor_transport="GLOO": its
    # result is an RDT object (a plain get refuses it), fetched through the
    # object store on request.
    ref = cluster.x.make.remote("single")
    with pytest.raises(ValueError, match="(?i)gloo"):
        ferry.get(ref, timeout=GET_TIMEOUT)
    _assert_tensors_equal(ferry.get(ref, timeout=GET_TIMEOUT, _tensor_transport="OBJECT_STORE"),
                          rdt.make_value("single"))
    for spelling in ("GLOO", "Gloo", "gloo"):
        ferry.method(tensor_transport=spelling)  # no error
        cluster.a.make_plain.options(tensor_transport=spelling)


def test_options_tensor_transport_makes_a_plain_method_rdt(cluster, rdt):
    import ferry
    a, b = cluster.a, cluster.b
    _wait_store_empty(a)
    plain = a.make_plain.remote("single")
    _assert_tensors_equal(ferry.get(plain, timeout=GET_TIMEOUT), rdt.make_value("single"))
    ref = a.make_plain.options(tensor_transport="gloo").remote("single")
    assert ferry.get(b.sum.remote(ref), timeout=GET_TIMEOUT) == _expected_sum(rdt)
    assert _stats(a)["num_objects"] == 1, "the options() result should stay in the producer"
    with pytest.raises(ValueError, match="gloo"):
        ferry.get(ref, timeout=GET_TIMEOUT)
    # ... and the other way round: object_store overrides the decorator.
    stored = a.make.options(tensor_transport="object_store").remote("single")
    _assert_tensors_equal(ferry.get(stored, timeout=GET_TIMEOUT), rdt.make_value("single"))
    del plain, ref, stored
    _wait_store_empty(a)


def test_options_with_unknown_transport_raises_value_error(cluster):
    with pytest.raises(ValueError) as ei:
        cluster.a.make_plain.options(tensor_transport="telepathy")
    for name in VALID_TRANSPORTS:
        assert name in str(ei.value)


@pytest.mark.parametrize("transport", ["cuda_ipc"])
def test_transport_missing_from_this_build_fails_clearly_at_call_time(cluster, transport):
    import ferry
    # The error may come when the producing call is submitted or when its
    # result is passed on; either way it is prompt and says what is missing.
    t0 = time.monotonic()
    with pytest.raises((ferry.exceptions.FerryError, NotImplementedError)) as ei:
        ref = cluster.a.make_plain.options(tensor_transport=transport).remote("single")
        ferry.get(cluster.b.sum.remote(ref), timeout=GET_TIMEOUT)
    assert time.monotonic() - t0 < ERROR_DEADLINE
    assert transport in str(ei.value)
    assert "not available" in str(ei.value)
    del ei
    assert ferry.get(cluster.b.ping.remote(), timeout=GET_TIMEOUT) == "pong"


def test_nccl_group_fails_clearly_in_a_cpu_build(cluster):
    import ferry
    from ferry.experimental.collective import create_collective_group, get_collective_groups
    t0 = time.monotonic()
    with pytest.raises((ferry.exceptions.FerryError, NotImplementedError), match="nccl"):
        create_collective_group([cluster.b, cluster.x], backend="nccl", name="nccl_try")
    assert time.monotonic() - t0 < ERROR_DEADLINE
    assert "nccl_try" not in [g.name for g in get_collective_groups()]


# --- 2. returned tensors stay in the producer -----------------------------------

def test_returned_tensors_stay_in_the_producer_store(cluster, rdt):
    import ferry
    a = cluster.a
    _wait_store_empty(a)
    ref = a.make.remote("dtypes")
    ferry.wait([ref], timeout=GET_TIMEOUT)
    want = rdt.make_value("dtypes")
    s = _stats(a)
    assert s["num_objects"] == 1
    assert s["num_tensors"] == len(rdt.DTYPES)
    assert s["bytes"] == sum(t.numel() * t.element_size() for t in want.values())
    ref2 = a.make.remote("shapes")
    ferry.wait([ref2], timeout=GET_TIMEOUT)
    shapes = rdt.make_value("shapes")
    s2 = _stats(a)
    assert s2["num_objects"] == 2
    assert s2["num_tensors"] == len(rdt.DTYPES) + len(shapes)
    # A non-contiguous tensor is kept in place (no copy): the store holds the
    # span of storage its strides cover, which for a strided slice is more
    # than numel * element_size.
    assert s2["bytes"] == s["bytes"] + sum(_span_bytes(t) for t in shapes.values())
    # The driver holds only the skeleton: the consumer (b) holds nothing of it.
    assert _stats(cluster.b)["num_objects"] == 0
    del ref, ref2
    _wait_store_empty(a)


@pytest.mark.parametrize("kind", ["dict", "list", "tuple", "dataclass", "namedtuple"])
def test_containers_arrive_intact_at_another_actor(cluster, rdt, kind):
    import ferry
    ref = cluster.a.make.remote(kind)
    want = rdt.make_value(kind)
    # What the receiver got, returned through the object store...
    got = ferry.get(cluster.b.echo.remote(ref), timeout=GET_TIMEOUT)
    _assert_values_equal(rdt, got, want)
    if kind == "dataclass":
        assert got.name == "outer" and got.inner.label == "inner"
    if kind == "namedtuple":
        assert got._fields == ("first", "second")
    # ... and the receiver's digests match the producer's own.
    assert ferry.get(cluster.b.describe.remote(ref), timeout=GET_TIMEOUT) == \
        ferry.get(cluster.a.describe.remote(ref), timeout=GET_TIMEOUT) == rdt.describe(want)


def test_every_cpu_dtype_arrives_byte_exact(cluster, rdt):
    import ferry
    ref = cluster.a.make.remote("dtypes")
    want = rdt.make_value("dtypes")
    got = ferry.get(cluster.c.echo.remote(ref), timeout=GET_TIMEOUT)
    assert sorted(got) == sorted(rdt.DTYPES)
    for name in rdt.DTYPES:
        assert got[name].dtype == getattr(torch, name)
        _assert_tensors_equal(got[name], want[name])
    assert ferry.get(cluster.c.describe.remote(ref), timeout=GET_TIMEOUT) == \
        ferry.get(cluster.a.describe.remote(ref), timeout=GET_TIMEOUT)


def test_zero_dim_empty_and_non_contiguous_tensors_arrive_byte_exact(cluster, rdt):
    import ferry
    ref = cluster.a.make.remote("shapes")
    want = rdt.make_value("shapes")
    assert not want["transposed"].is_contiguous() and not want["strided"].is_contiguous()
    got = ferry.get(cluster.b.echo.remote(ref), timeout=GET_TIMEOUT)
    for name, t in want.items():
        _assert_tensors_equal(got[name], t)
    assert got["zero_dim"].dim() == 0 and got["empty_2d"].shape == (3, 0)
    assert ferry.get(cluster.b.describe.remote(ref), timeout=GET_TIMEOUT) == \
        ferry.get(cluster.a.describe.remote(ref), timeout=GET_TIMEOUT) == rdt.describe(want)


# --- 3. passing refs --------------------------------------------------------------

def test_ref_passed_back_to_its_producer_is_the_same_memory(cluster, rdt):
    import ferry
    a = cluster.a
    ref = a.make_recorded.remote(1000)
    ptr, total = ferry.get(a.ptr_of.remote(ref), timeout=GET_TIMEOUT)
    assert ptr == ferry.get(a.recorded_ptr.remote(), timeout=GET_TIMEOUT)
    assert total == float(rdt.make_tensor("float32", (1000,), 0).double().sum())


@pytest.mark.parametrize("method", ["make_recorded", "make_recorded_transposed"])
def test_ref_passed_back_to_its_producer_is_the_very_same_tensor(cluster, method):
    # Passed back to its producer, a ref yields the very same tensor object,
    # with no copy (and no tensor byte is copied on return, non-contiguous
    # tensors included).
    import ferry
    a = cluster.a
    ref = getattr(a, method).remote(50)
    same_object, same_memory, same_strides = ferry.get(a.is_recorded.remote(ref), timeout=GET_TIMEOUT)
    assert same_memory and same_strides, "the producer got a copy of its own tensor"
    assert same_object, "the producer got a new tensor object over the same memory"


@pytest.mark.parametrize("numel", [256, 64 * 1024])
def test_objects_are_read_from_the_producer_on_this_host(cluster, numel):
    """A gloo object reaches a receiver on the same host through the shm
    export its producer adds (the receiver reads the producer's memory; no
    message to the producer), small (up to FERRY_INLINE_TENSOR_BYTES) or not;
    the receiver gets the bytes as they are at transfer time, in-place
    changes included (the guide's mutability semantics)."""
    import ferry
    ref = cluster.a.make_recorded.remote(numel, 3)
    changed = ferry.get(cluster.a.add_one_in_place.remote(ref), timeout=GET_TIMEOUT)
    assert ferry.get(cluster.b.sum.remote(ref), timeout=GET_TIMEOUT) == pytest.approx(changed)
    records = [r for r in ferry.get(cluster.b.transfer_log.remote(), timeout=GET_TIMEOUT)
               if r["object_id"] == ref.hex()]
    assert [(r["transport"], r["direction"], r["bytes"], r["error"]) for r in records] == \
        [("shm", "recv", numel * 4, None)]
    assert "share this host" in records[0]["reason"]


def test_refs_as_positional_keyword_and_nested_arguments(cluster, rdt):
    """Top-level refs arrive as values (received over the group); nested
    ones as refs, which the task gets as the driver would: a two-sided
    transport's through the object store, a plain get raises the guide's
    ValueError."""
    import ferry
    a = cluster.a
    r1, r2, r3, r4 = (a.make.remote("single", seed) for seed in (1, 2, 3, 4))
    got = ferry.get(cluster.b.describe_args_getting_nested.remote(r1, k=r2, lst=[r3, 5],
                                                                   dct={"in": r4}),
                    timeout=GET_TIMEOUT)
    v = [rdt.make_value("single", s) for s in (1, 2, 3, 4)]
    assert got == rdt.describe([[v[0]], {"k": v[1], "lst": [v[2], 5], "dct": {"in": v[3]}}])
    message = ferry.get(cluster.b.plain_get_error.remote([r3]), timeout=GET_TIMEOUT)
    assert message is not None and "_tensor_transport" in message


def test_same_ref_twice_in_one_call_is_received_once(cluster, rdt):
    import ferry
    ref = cluster.a.make.remote("single", 7)
    same_ptr, _ = ferry.get(cluster.b.same_memory.remote(ref, ref), timeout=GET_TIMEOUT)
    assert same_ptr, "both arguments should be the one received tensor"
    assert ferry.get(cluster.b.sum_many.remote(ref, ref), timeout=GET_TIMEOUT) == \
        2 * _expected_sum(rdt, seed=7)


def test_ref_chain_a_to_b_to_c(cluster, rdt):
    import ferry
    t0 = rdt.make_value("single", 11)
    r1 = cluster.a.make.remote("single", 11)
    r2 = cluster.b.derive.remote(r1, 2.0)            # b returns an RDT tensor from a's
    r3 = cluster.c.derive_from_dict.remote(r2, 1.5)  # c returns one from b's
    out = ferry.get(r3, timeout=GET_TIMEOUT, _tensor_transport="object_store")
    assert out["src_sum"] == float((t0 * 2.0).double().sum())
    _assert_tensors_equal(out["t"], t0 * 2.0 + 1.5)
    # The end of the chain travels on, back to the chain's start.
    assert ferry.get(cluster.a.sum_key.remote(r3, "t"), timeout=GET_TIMEOUT) == \
        float((t0 * 2.0 + 1.5).double().sum())


def test_busy_producer_still_sends(cluster, rdt, tmp_path):
    import ferry
    a, b = cluster.a, cluster.b
    started, flag = str(tmp_path / "started"), str(tmp_path / "flag")
    ref = a.make.remote("single", 5)
    assert ferry.wait([ref], timeout=GET_TIMEOUT)[0]
    busy = a.busy.remote(started, flag, GET_TIMEOUT)  # max_concurrency=1: a is occupied
    try:
        assert wait_for(lambda: os.path.exists(started), GET_TIMEOUT), "busy() never started"
        consumer = b.sum.remote(ref)
        ready, _ = ferry.wait([consumer, busy], num_returns=1, timeout=GET_TIMEOUT)
        assert ready and ready[0].binary() == consumer.binary(), \
            "the receiver's task should finish while the producer is still busy"
        assert ferry.get(consumer, timeout=GET_TIMEOUT) == _expected_sum(rdt, seed=5)
        assert ferry.wait([busy], timeout=0)[0] == [], "busy() ended before it was released"
    finally:
        open(flag, "w").close()
    assert ferry.get(busy, timeout=GET_TIMEOUT) is True


# --- 4. the mutability warning -----------------------------------------------------

def test_mutability_warning_when_ref_goes_to_producer_and_another_actor(cluster):
    import ferry
    ref = cluster.a.make.remote("single")
    with pytest.warns(UserWarning, match="mutable"):
        s1 = cluster.a.sum.remote(ref)
        s2 = cluster.b.sum.remote(ref)
    assert ferry.get(s1, timeout=GET_TIMEOUT) == ferry.get(s2, timeout=GET_TIMEOUT)


def test_no_mutability_warning_when_ref_goes_only_to_other_actors(cluster):
    import ferry
    ref = cluster.a.make.remote("single")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s1 = cluster.b.sum.remote(ref)
        s2 = cluster.c.sum.remote(ref)
        s3 = cluster.b.sum.remote(ref)
    assert ferry.get(s1, timeout=GET_TIMEOUT) == ferry.get(s2, timeout=GET_TIMEOUT) == \
        ferry.get(s3, timeout=GET_TIMEOUT)
    assert not [w for w in caught if "mutable" in str(w.message)], [str(w.message) for w in caught]


# --- 5. ferry.get of an RDT object ---------------------------------------------------

def test_get_of_gloo_object_raises_value_error_naming_the_fix(cluster):
    import ferry
    ref = cluster.a.make.remote("single")
    t0 = time.monotonic()
    with pytest.raises(ValueError) as ei:
        ferry.get(ref, timeout=GET_TIMEOUT)
    assert time.monotonic() - t0 < ERROR_DEADLINE
    msg = str(ei.value)
    assert "GLOO" in msg.upper()
    assert '_tensor_transport="object_store"' in msg
    with pytest.raises(ValueError):
        ferry.get([ref], timeout=GET_TIMEOUT)


@pytest.mark.parametrize("how", [{"_tensor_transport": "object_store"}, {"_use_object_store": True}])
def test_get_through_the_object_store(cluster, rdt, how):
    import ferry
    ref = cluster.a.make.remote("dict", 3)
    got = ferry.get(ref, timeout=GET_TIMEOUT, **how)
    reported = ferry.get(cluster.a.echo.remote(ref), timeout=GET_TIMEOUT)  # the producer's view
    _assert_values_equal(rdt, got, reported)
    _assert_values_equal(rdt, got, rdt.make_value("dict", 3))
    assert got["meta"] == "hello"
    # Twice, and the ref is still usable by actors afterwards.
    _assert_values_equal(rdt, ferry.get(ref, timeout=GET_TIMEOUT, **how), got)
    assert ferry.get(cluster.b.describe.remote(ref), timeout=GET_TIMEOUT) == rdt.describe(got)


# --- 6. collective groups -------------------------------------------------------------

def test_group_handle_and_listing(cluster):
    from ferry.experimental.collective import get_collective_groups
    g = cluster.group
    assert g.name == "main"
    assert g.backend == "gloo"
    assert list(g.actors) == [cluster.a, cluster.b, cluster.c]
    listed = {grp.name: grp for grp in get_collective_groups()}
    assert "main" in listed and listed["main"].actors == g.actors


def test_transfer_without_a_common_group_fails_naming_create_collective_group(cluster):
    import ferry
    ref = cluster.a.make.remote("single")
    t0 = time.monotonic()
    with pytest.raises(ferry.exceptions.FerryError) as ei:
        ferry.get(cluster.x.sum.remote(ref), timeout=GET_TIMEOUT)
    assert time.monotonic() - t0 < ERROR_DEADLINE
    assert "create_collective_group" in str(ei.value)
    assert ferry.get(cluster.x.ping.remote(), timeout=GET_TIMEOUT) == "pong"


def test_unknown_backend_is_a_value_error(cluster):
    from ferry.experimental.collective import create_collective_group, get_collective_groups
    with pytest.raises(ValueError, match="gloo"):
        create_collective_group([cluster.b, cluster.x], backend="carrier_pigeon", name="bad")
    assert "bad" not in [g.name for g in get_collective_groups()]


@pytest.mark.parametrize("backend", ["gloo", "torch_gloo", "GLOO"])
def test_create_destroy_recreate_and_transfer(cluster, rdt, backend):
    import ferry
    from ferry.experimental.collective import (create_collective_group,
                                               destroy_collective_group,
                                               get_collective_groups)
    b, x = cluster.b, cluster.x
    name = f"pair_{backend.lower()}"
    g = create_collective_group([x, b], backend=backend, name=name)
    try:
        assert (g.name, g.backend, list(g.actors)) == (name, backend.lower(), [x, b])
        assert name in [grp.name for grp in get_collective_groups()]
        ref = x.make.remote("single", 21)  # x's decorator says "GLOO"
        assert ferry.get(b.sum.remote(ref), timeout=GET_TIMEOUT) == _expected_sum(rdt, seed=21)
        destroy_collective_group(g)
        assert name not in [grp.name for grp in get_collective_groups()]
        with pytest.raises(ferry.exceptions.FerryError, match="create_collective_group"):
            ferry.get(b.sum.remote(ref), timeout=GET_TIMEOUT)
        g = create_collective_group([x, b], backend=backend, name=name)
        assert name in [grp.name for grp in get_collective_groups()]
        assert ferry.get(b.sum.remote(ref), timeout=GET_TIMEOUT) == _expected_sum(rdt, seed=21)
        ref2 = b.make.remote("dict", 22)  # the other direction
        _assert_values_equal(rdt, ferry.get(x.echo.remote(ref2), timeout=GET_TIMEOUT),
                             rdt.make_value("dict", 22))
        destroy_collective_group(name)  # by name
        assert name not in [grp.name for grp in get_collective_groups()]
    finally:
        if name in [grp.name for grp in get_collective_groups()]:
            destroy_collective_group(name)
    # The other group of b is untouched.
    ref3 = cluster.a.make.remote("single", 23)
    assert ferry.get(b.sum.remote(ref3), timeout=GET_TIMEOUT) == _expected_sum(rdt, seed=23)


# --- 7. wait_tensor_freed -----------------------------------------------------------------

def test_wait_tensor_freed_times_out_while_a_ref_is_alive(cluster):
    import ferry
    a = cluster.a
    ref = a.make_recorded.remote(1000)
    ferry.get(cluster.b.sum.remote(ref), timeout=GET_TIMEOUT)  # the consumer finished
    t0 = time.monotonic()
    what, is_timeout_error, _ = ferry.get(a.wait_freed.remote(0.5), timeout=GET_TIMEOUT)
    elapsed = time.monotonic() - t0
    assert is_timeout_error and what != "freed", what
    assert elapsed >= 0.5
    del ref
    what, _, _ = ferry.get(a.wait_freed.remote(GET_TIMEOUT), timeout=GET_TIMEOUT)
    assert what == "freed"


def test_wait_tensor_freed_returns_after_ref_dropped_and_consumer_finished(cluster, rdt, tmp_path):
    import ferry
    a, b = cluster.a, cluster.b
    flag = str(tmp_path / "release")
    ref = a.make_recorded.remote(1000)
    consumer = b.hold.remote(ref, flag, GET_TIMEOUT)   # runs until `flag` exists
    waiter = a.wait_freed.remote(GET_TIMEOUT)           # a blocks; it must still send to b
    try:
        del ref  # the driver drops its ref; the consumer still runs
        assert ferry.wait([waiter], timeout=0.5)[0] == [], \
            "wait_tensor_freed returned while the consuming task was still running"
    finally:
        open(flag, "w").close()
    total, consumer_end = ferry.get(consumer, timeout=GET_TIMEOUT)
    what, _, freed_at = ferry.get(waiter, timeout=GET_TIMEOUT)
    assert what == "freed"
    assert freed_at >= consumer_end
    assert total == float(rdt.make_tensor("float32", (1000,), 0).double().sum())


# --- 8. freeing ---------------------------------------------------------------------------------

def test_store_empties_after_refs_dropped_and_consumers_finished(cluster, rdt):
    import ferry
    a, b = cluster.a, cluster.b
    _wait_store_empty(a, b)
    r1 = a.make.remote("single", 31)
    r2 = a.make.remote("dtypes", 32)
    total, in_task = ferry.get(b.sum_with_stats.remote(r1), timeout=GET_TIMEOUT)
    assert total == _expected_sum(rdt, seed=31)
    assert ferry.get(b.describe.remote(r2), timeout=GET_TIMEOUT) == \
        rdt.describe(rdt.make_value("dtypes", 32))
    assert _stats(a)["num_objects"] == 2, "the producer frees only when the refs are gone"
    del r1
    assert wait_for(lambda: _stats(a)["num_objects"] == 1, GET_TIMEOUT, interval=0.05), _stats(a)
    assert _stats(a)["num_tensors"] == len(rdt.DTYPES)
    del r2
    _wait_store_empty(a)
    assert _stats(a) == {"num_objects": 0, "num_tensors": 0, "bytes": 0}
    # The receiver keeps no received copy once its tasks are done.
    _wait_store_empty(b)
    assert _stats(b) == {"num_objects": 0, "num_tensors": 0, "bytes": 0}


def test_ref_still_held_by_a_pending_consumer_is_not_freed(cluster, rdt, tmp_path):
    import ferry
    a, b = cluster.a, cluster.b
    _wait_store_empty(a)
    flag = str(tmp_path / "release")
    gate = b.hold.remote(ferry.put(torch.ones(1)), flag, GET_TIMEOUT)  # b busy: next call queues
    ref = a.make.remote("single", 41)
    consumer = b.sum.remote(ref)
    del ref
    try:
        # The driver has no ref left, but a submitted task still needs the tensors.
        assert ferry.wait([consumer], timeout=0.3)[0] == []
        assert _stats(a)["num_objects"] == 1
    finally:
        open(flag, "w").close()
    ferry.get(gate, timeout=GET_TIMEOUT)
    assert ferry.get(consumer, timeout=GET_TIMEOUT) == _expected_sum(rdt, seed=41)
    _wait_store_empty(a, b)


# --- 9. errors ------------------------------------------------------------------------------------

def test_exception_in_producer_reaches_consumers_and_get(cluster, rdt):
    import ferry
    a, b, c = cluster.a, cluster.b, cluster.c
    failed = a.fail_rdt.remote("no-tensor-here")
    consumers = [b.sum.remote(failed), c.sum.remote(failed), a.sum.remote(failed)]
    for ref in consumers + [failed]:
        with pytest.raises(KeyError) as ei:
            ferry.get(ref, timeout=GET_TIMEOUT)
        assert isinstance(ei.value, ferry.exceptions.TaskError)
        assert "no-tensor-here" in str(ei.value)
    with pytest.raises(KeyError):
        ferry.get(failed, timeout=GET_TIMEOUT, _tensor_transport="object_store")
    # The group is still usable.
    ref = a.make.remote("single", 51)
    assert ferry.get(b.sum.remote(ref), timeout=GET_TIMEOUT) == _expected_sum(rdt, seed=51)
    assert ferry.get(c.sum.remote(ref), timeout=GET_TIMEOUT) == _expected_sum(rdt, seed=51)
