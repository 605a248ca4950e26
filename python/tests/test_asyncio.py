"""asyncio: ``async def`` actor methods on the actor's event loop, and
ObjectRefs as futures (``ref.future()``, ``await ref``, ``asyncio.gather``)
in the driver and inside asyncio actors."""
import asyncio
import concurrent.futures

import pytest

from conftest import wait_for

TIMEOUT = 60


@pytest.fixture(scope="module")
def ferry(ferry_module_session):
    return ferry_module_session


@pytest.fixture(scope="module")
def aa():
    import async_actors
    return async_actors


def test_async_methods_return_their_awaited_results(ferry, aa):
    c = aa.AsyncCounter.remote()
    assert ferry.get([c.incr.remote(2), c.incr.remote(3)], timeout=TIMEOUT) == [2, 5]
    assert ferry.get(c.value.remote(), timeout=TIMEOUT) == 5


def _arrivals(ferry, signal):
    return ferry.get(signal.arrivals.remote(), timeout=TIMEOUT)


def test_async_calls_interleave_on_one_loop(ferry, aa):
    c = aa.AsyncCounter.remote()  # default max_concurrency for asyncio: 1000
    signal = aa.Signal.remote()
    held = [c.hold.remote(signal) for _ in range(50)]
    # All 50 are suspended at their await at once.
    assert wait_for(lambda: _arrivals(ferry, signal) == 50, TIMEOUT)
    ferry.get(signal.send.remote(), timeout=TIMEOUT)
    assert ferry.get(held, timeout=TIMEOUT) == [50] * 50


def test_max_concurrency_bounds_the_calls_in_flight(ferry, aa):
    c = aa.AsyncCounter.options(max_concurrency=3).remote()
    signal = aa.Signal.remote()
    held = [c.hold.remote(signal) for _ in range(5)]
    assert wait_for(lambda: _arrivals(ferry, signal) == 3, TIMEOUT)
    ready, _ = ferry.wait(held, num_returns=1, timeout=0.2)
    assert ready == [] and _arrivals(ferry, signal) == 3, "two calls wait for a slot"
    ferry.get(signal.send.remote(), timeout=TIMEOUT)
    assert ferry.get(held, timeout=TIMEOUT) == [3] * 5


def test_an_async_method_that_raises_fails_its_call_with_the_exception(ferry, aa):
    c = aa.AsyncCounter.remote()
    with pytest.raises(KeyError, match="async boom"):
        ferry.get(c.fail.remote(), timeout=TIMEOUT)
    assert ferry.get(c.incr.remote(), timeout=TIMEOUT) == 1, "the actor lives on"


def test_future_is_a_concurrent_future_of_the_value(ferry, aa):
    a = aa.Adder.remote()
    fut = a.add.remote(1, 2).future()
    assert isinstance(fut, concurrent.futures.Future)
    assert fut.result(timeout=TIMEOUT) == 3
    bad = aa.AsyncCounter.remote().fail.remote().future()
    with pytest.raises(KeyError):
        bad.result(timeout=TIMEOUT)


def test_await_and_gather_refs_in_the_driver(ferry, aa):
    a = aa.Adder.remote()

    async def main():
        one = await a.add.remote(1, 1)
        many = await asyncio.gather(*[a.add.remote(i, i) for i in range(10)])
        tensor = await a.tensor.remote(4)
        return one, many, tensor.tolist()

    one, many, tensor = asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    assert one == 2
    assert many == [2 * i for i in range(10)]
    assert tensor == [0.0, 1.0, 2.0, 3.0]


def test_await_refs_inside_an_async_actor(ferry, aa):
    a = aa.Adder.remote()
    c = aa.AsyncCounter.remote()
    assert ferry.get(c.await_ref.remote([a.add.remote(20, 22)]), timeout=TIMEOUT) == 42
    refs = [a.add.remote(i, 0) for i in range(5)]
    assert ferry.get(c.gather.remote(refs), timeout=TIMEOUT) == 10


def test_rdt_returns_from_async_methods_move_directly(ferry, aa):
    p = aa.AsyncTensors.remote()
    ref = p.make.remote(8)
    assert ref.tensor_transport() == "NIXL"
    assert ferry.get(ref, timeout=TIMEOUT).tolist() == [float(i) for i in range(8)]
    # An RDT ref awaited from async code, and passed to another async actor.
    assert asyncio.run(asyncio.wait_for(_await(ref), TIMEOUT)).sum().item() == 28.0
    q = aa.AsyncTensors.remote()
    assert ferry.get(q.total.remote(ref), timeout=TIMEOUT) == 28.0


async def _await(ref):
    return await ref
