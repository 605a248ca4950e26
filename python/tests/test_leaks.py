"""No leaks across many transfers.

10 000 small transfers (4 KiB tensors, producer -> consumer) and 200
transfers of 16 MiB, for each of the transports gloo, shm and nixl (the
one-sided transports too: their exports and registrations must be released),
then every ref dropped: every tensor store
(producer and consumer) reports zero objects, the driver owns no object, and
each process's RSS (driver, producer, consumer) is back within 10% of its
warmed-up baseline.

The baseline is taken after a warm-up round of exactly the same work (the
same counts and batch sizes), so that pools (shared-memory segments, the
receive allocator, glibc arenas) have reached their steady size; a leak shows
as growth over a second, identical round. Every process returns its C
heap's free pages (malloc_trim) before RSS is read, at the baseline and
after, so that what glibc keeps cached from the 16 MiB allocations (which
varies with how many were alive at the peak) does not pass for a leak. Calls are submitted in batches
(500 small, 10 large: at most 160 MiB in flight) and each batch's results
are checked before the next, so the work is bounded, not the memory.

Full counts, no reduction: about 10-12 s per round on a 2-core machine.

The same check for borrowing (the patterns of test_borrowing.py: the guide's
NIXL put-and-return, refs nested in returned lists and in put values, passed
to another actor): producer and holder RSS within 10% of their baseline
after a second, identical round.
"""
import gc
import os
import time

import pytest

from conftest import GET_TIMEOUT, wait_for
from test_borrowing import counts, guide_pattern, wait_store

pytestmark = pytest.mark.usefixtures("ferry_module_session")
torch = pytest.importorskip("torch")

SMALL_COUNT, SMALL_BYTES, SMALL_BATCH = 10_000, 4 << 10, 500
LARGE_COUNT, LARGE_BYTES, LARGE_BATCH = 200, 16 << 20, 10
RSS_TOLERANCE = 0.10
# Freeing is asynchronous (FREE_OBJECTS is one-way); allow it this long.
FREE_DEADLINE = 30.0


@pytest.fixture(scope="module")
def pair(ferry_module_session):
    import ferry
    import hardening_actors as H
    from ferry.experimental.collective import create_collective_group, destroy_collective_group
    src, sink = H.TensorSource.remote(), H.TensorSink.remote()
    ferry.get([src.ping.remote(), sink.ping.remote()], timeout=GET_TIMEOUT)
    create_collective_group([src, sink], backend="gloo", name="leaks")
    yield src, sink
    destroy_collective_group("leaks")
    ferry.kill(src)
    ferry.kill(sink)


def _transfers(src, sink, count, nbytes, batch, transport):
    """count producer -> consumer transfers of nbytes each; checks every result."""
    import ferry
    make = src.make.options(tensor_transport=transport)
    for start in range(0, count, batch):
        fills = range(start, min(count, start + batch))
        # The tensor's ref is dropped at once: only the consuming task holds it.
        results = [sink.check.remote(make.remote(nbytes, i % 1000), i % 1000) for i in fills]
        got = ferry.get(results, timeout=GET_TIMEOUT)
        bad = [(i, g) for i, g in zip(fills, got) if g != (nbytes // 4, True)]
        assert not bad, f"wrong data for transfers {bad[:5]}"
        del results, got


def _round(src, sink, transport):
    t0 = time.monotonic()
    _transfers(src, sink, SMALL_COUNT, SMALL_BYTES, SMALL_BATCH, transport)
    t1 = time.monotonic()
    _transfers(src, sink, LARGE_COUNT, LARGE_BYTES, LARGE_BATCH, transport)
    return t1 - t0, time.monotonic() - t1


def _all_freed(src, sink):
    """(ok, details): both stores empty and the driver owns nothing."""
    import ferry
    gc.collect()
    stores = ferry.get([src.stats.remote(), sink.stats.remote()], timeout=GET_TIMEOUT)
    driver = ferry._private.runtime.current().stats()
    ok = (all(s["num_objects"] == 0 and s["num_tensors"] == 0 and s["bytes"] == 0 for s in stores)
          and driver["owned_objects"] == 0 and driver["stored_values"] == 0)
    return ok, {"producer_store": stores[0], "consumer_store": stores[1], "driver": driver}


def _rss(src, sink):
    import ferry
    import hardening_actors as H
    gc.collect()
    H.trim_heap()
    prod, cons = ferry.get([src.rss_kib.remote(True), sink.rss_kib.remote(True)],
                           timeout=GET_TIMEOUT)
    return {"driver": H.rss_kib(), "producer": prod, "consumer": cons}


def _wait_freed(src, sink):
    last = {}

    def check():
        ok, last["details"] = _all_freed(src, sink)
        return ok
    assert wait_for(check, FREE_DEADLINE, interval=0.05), f"objects left behind: {last['details']}"


@pytest.mark.parametrize("transport", ["gloo", "shm", "nixl"])
def test_many_transfers_leave_nothing_behind(pair, transport):
    src, sink = pair
    warm_small, warm_large = _round(src, sink, transport)
    _wait_freed(src, sink)
    baseline = _rss(src, sink)

    small_s, large_s = _round(src, sink, transport)
    _wait_freed(src, sink)

    limit = {k: v * (1 + RSS_TOLERANCE) for k, v in baseline.items()}
    last = {}

    def rss_back():
        last["rss"] = _rss(src, sink)
        return all(last["rss"][k] <= limit[k] for k in limit)
    # RSS can lag the frees (a receive buffer goes back when torch drops it).
    back = wait_for(rss_back, FREE_DEADLINE, interval=0.1)
    report = (f"warm-up round: {warm_small:.1f}s small + {warm_large:.1f}s large; measured round: "
              f"{small_s:.1f}s + {large_s:.1f}s; RSS KiB baseline {baseline}, after {last['rss']}")
    print(report)
    assert back, f"RSS grew more than {RSS_TOLERANCE:.0%} over the warmed-up baseline: {report}"


def test_rss_reader_sees_this_process():
    """Sanity for the measurement itself: VmRSS is read and plausible."""
    import hardening_actors as H
    assert H.rss_kib() > 1024 and H.rss_kib(os.getpid()) > 1024


# --- borrowing: refs that travel inside values --------------------------------


@pytest.fixture(scope="module")
def borrowing(ferry_module_session):
    import borrowing_actors
    return borrowing_actors


def _mixed_round(producer, holder, count):
    """count rounds of the guide's pattern plus count/100 of refs nested in a
    returned list and in a put, held by another actor; all refs dropped."""
    import ferry
    guide_pattern(producer, count)
    for _ in range(count // 100):
        refs = ferry.get(producer.produce_list.remote(10), timeout=GET_TIMEOUT)
        outer = ferry.put([refs, ferry.put(torch.ones(256))])
        ferry.get(holder.hold.remote([outer] + refs), timeout=GET_TIMEOUT)
        del refs, outer
        assert ferry.get(holder.sum_held.remote(), timeout=GET_TIMEOUT) > 0
        ferry.get(holder.drop.remote(), timeout=GET_TIMEOUT)


def test_borrowing_patterns_leave_rss_flat_after_warm_up(borrowing):
    """Producer and consumer RSS stay within 10% of their warmed-up
    baseline across a second, identical round of every pattern."""
    import ferry
    producer, holder = borrowing.Producer.remote(), borrowing.Holder.remote()

    def rss():
        return dict(zip(("producer", "holder"),
                        ferry.get([producer.rss_kib.remote(), holder.rss_kib.remote()],
                                  timeout=GET_TIMEOUT)))
    _mixed_round(producer, holder, 2000)
    wait_store(producer, 0)
    baseline = rss()
    _mixed_round(producer, holder, 2000)
    wait_store(producer, 0)
    limit = {k: v * (1 + RSS_TOLERANCE) for k, v in baseline.items()}
    last = {}

    def back():
        last["rss"] = rss()
        return all(last["rss"][k] <= limit[k] for k in limit)
    assert wait_for(back, FREE_DEADLINE, interval=0.1), \
        f"RSS KiB grew over {RSS_TOLERANCE:.0%}: baseline {baseline}, after {last['rss']}"
    held = counts(holder)
    assert held["borrowed_objects"] == 0 and held["value_holds"] == 0, held
