"""One-sided transports: `nixl` (UCX), `shm` (same host, one copy)
and `auto`; put/get with them in actors and in the driver; pooled receive
buffers; transfer records.

No collective group is created anywhere in this module: one-sided transfers
need none. One runtime and three actors serve the module; tests wait (with a
deadline) for the stores to empty where they count objects.
"""
import gc
import types

import pytest

from conftest import GET_TIMEOUT, wait_for

pytestmark = [
    pytest.mark.usefixtures("ferry_module_session"),
    pytest.mark.filterwarnings("ignore:.*mutable:UserWarning"),
]

torch = pytest.importorskip("torch")

ONE_SIDED = ("nixl", "shm", "auto")
# The path a transport's pulls take on one host.
PATH = {"nixl": "nixl", "shm": "shm", "auto": "shm"}


@pytest.fixture(scope="module")
def rdt():
    import rdt_test_actors
    return rdt_test_actors


@pytest.fixture(scope="module")
def actors(ferry_module_session, rdt):
    import ferry
    a, c = rdt.Producer.remote(), rdt.Producer.remote()
    b = rdt.Receiver.remote()
    ferry.get([h.ping.remote() for h in (a, b, c)], timeout=GET_TIMEOUT)
    return types.SimpleNamespace(a=a, b=b, c=c)


def _get(ref):
    import ferry
    return ferry.get(ref, timeout=GET_TIMEOUT)


def _total_bytes(value, rdt):
    return sum(t.numel() * t.element_size() for _, t in rdt.tensors_in(value))


@pytest.mark.parametrize("transport", ONE_SIDED)
@pytest.mark.parametrize("kind", ["dict", "dataclass", "dtypes", "shapes"])
def test_actor_to_actor_without_a_group(actors, rdt, transport, kind):
    from ferry.experimental.collective import get_collective_groups
    assert get_collective_groups() == []
    ref = actors.a.make_plain.options(tensor_transport=transport).remote(kind, 7)
    assert _get(actors.b.describe.remote(ref)) == rdt.describe(rdt.make_value(kind, 7))


@pytest.mark.parametrize("transport", ONE_SIDED)
def test_tensors_stay_in_the_producer_until_the_ref_is_dropped(actors, rdt, transport):
    ref = actors.a.make_plain.options(tensor_transport=transport).remote("dtypes", 1)
    assert _get(actors.b.describe.remote(ref)) == rdt.describe(rdt.make_value("dtypes", 1))
    assert _get(actors.a.stats.remote())["num_objects"] >= 1
    del ref
    gc.collect()
    assert wait_for(lambda: _get(actors.a.stats.remote())["num_objects"] == 0, GET_TIMEOUT)
    # The receiver keeps nothing once its task finished.
    assert _get(actors.b.stats.remote())["num_objects"] == 0


@pytest.mark.parametrize("transport", ONE_SIDED)
def test_ref_passed_back_to_its_producer_is_the_very_same_tensor(actors, transport):
    ref = actors.a.make_recorded.options(tensor_transport=transport).remote(1000, 3)
    assert _get(actors.a.is_recorded.remote(ref)) == (True, True, True)


@pytest.mark.parametrize("transport", ONE_SIDED)
def test_get_in_the_driver_pulls_and_records_the_path(actors, rdt, transport):
    import ferry
    ref = actors.a.make_plain.options(tensor_transport=transport).remote("dtypes", 5)
    value = _get(ref)
    want = rdt.make_value("dtypes", 5)
    assert rdt.describe(value) == rdt.describe(want)
    record = ferry.experimental.transfer_log()[-1]
    assert record["object_id"] == ref.hex()
    assert record["transport"] == PATH[transport]
    assert record["direction"] == "recv"
    assert record["bytes"] == _total_bytes(want, rdt)
    assert record["error"] is None and record["micros"] >= 0 and record["peer"]


def test_get_through_the_object_store_still_works(actors, rdt):
    ref = actors.a.make_plain.options(tensor_transport="nixl").remote("dict", 2)
    import ferry
    value = ferry.get(ref, timeout=GET_TIMEOUT, _tensor_transport="object_store")
    assert rdt.describe(value) == rdt.describe(rdt.make_value("dict", 2))


@pytest.mark.parametrize("transport", ONE_SIDED)
def test_put_in_the_driver_then_get_anywhere(actors, rdt, transport):
    import ferry
    t = rdt.make_tensor("float32", (300, 300), 11)
    ref = ferry.put(t, _tensor_transport=transport)
    assert _get(ref) is t  # the putting process gets its own tensor back, no copy
    assert _get(actors.b.sum.remote(ref)) == pytest.approx(float(t.double().sum()))
    value = {"w": t, "note": "x", "b": rdt.make_tensor("int64", (5,), 12)}
    ref2 = ferry.put(value, _tensor_transport=transport)
    assert _get(actors.b.describe.remote(ref2)) == rdt.describe(value)
    # Refs nested in an argument are resolved before the call; inside a put
    # value they arrive as refs, and the actor's get pulls.
    assert _get(actors.b.get_describe.remote(ferry.put([ref2]))) == [rdt.describe(value)]


@pytest.mark.parametrize("transport", ONE_SIDED)
def test_put_inside_an_actor_pulled_by_the_driver_and_another_actor(actors, rdt, transport):
    [ref] = _get(actors.a.put_value.remote("dataclass", transport, 4))
    want = rdt.describe(rdt.make_value("dataclass", 4))
    assert rdt.describe(_get(ref)) == want
    assert _get(actors.b.describe.remote(ref)) == want
    import ferry
    assert _get(actors.c.get_describe.remote(ferry.put([ref]))) == [want]


def test_the_guides_produce_and_consume_with_nixl(actors, rdt):
    t1, t2 = rdt.make_tensor("float32", (1000, 1000), 1), rdt.make_tensor("float32", (1000, 1000), 2)
    refs = actors.a.produce.remote([t1, t2])
    got = _get(actors.b.get_describe.remote(refs))
    assert got == [rdt.describe(t1), rdt.describe(t2)]


def test_a_list_of_refs_from_two_producers_is_fetched_in_one_call(actors, rdt):
    import ferry
    refs = [h.make_plain.options(tensor_transport=tr).remote("single", seed)
            for seed, (h, tr) in enumerate([(actors.a, "shm"), (actors.c, "shm"),
                                            (actors.a, "nixl"), (actors.c, "nixl")])]
    ferry.wait(refs, num_returns=len(refs), timeout=GET_TIMEOUT)
    n = len(ferry.experimental.transfer_log())
    values = _get(refs)
    for seed, v in enumerate(values):
        assert rdt.describe(v) == rdt.describe(rdt.make_value("single", seed))
    log = ferry.experimental.transfer_log()
    new = log[n:] if n < 1024 else log[-4:]
    assert sorted(r["object_id"] for r in new) == sorted(r.hex() for r in refs)
    assert sorted(r["transport"] for r in new) == ["nixl", "nixl", "shm", "shm"]


@pytest.mark.parametrize("transport", ["nixl", "shm"])
def test_receive_buffers_come_from_the_pool_once_warm(actors, rdt, transport):
    import ferry
    ref = actors.a.make_plain.options(tensor_transport=transport).remote("single", 9)
    for _ in range(3):
        v = _get(ref)
        del v  # torch frees it: the memory goes back to the pool
    assert ferry.experimental.transfer_log()[-1]["pooled"] is True
    for _ in range(3):
        _get(actors.b.sum.remote(ref))
    records = [r for r in _get(actors.b.transfer_log.remote()) if r["object_id"] == ref.hex()]
    assert len(records) == 3
    assert records[-1]["pooled"] is True and records[-1]["transport"] == transport


def test_put_with_a_two_sided_transport_is_a_value_error(actors):
    import ferry
    with pytest.raises(ValueError, match="one-sided"):
        ferry.put(torch.ones(3), _tensor_transport="gloo")
    with pytest.raises(ValueError, match="valid"):
        ferry.put(torch.ones(3), _tensor_transport="carrier-pigeon")


def test_put_of_a_value_without_tensors_is_an_ordinary_object(actors):
    import ferry
    ref = ferry.put({"a": 1}, _tensor_transport="nixl")
    assert _get(ref) == {"a": 1}
    assert _get(actors.b.echo.remote(ref)) == {"a": 1}
