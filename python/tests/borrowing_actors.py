"""Actor classes for the ownership and borrowing tests (test_borrowing.py).

Imported lazily by those tests (and by worker processes, through the
PYTHONPATH conftest sets), like ferry_test_actors.
"""
import gc
import os

import torch

import ferry
from ferry._private import runtime
from hardening_actors import rss_kib, trim_heap

GET_TIMEOUT = 60


def _counts():
    """What this process owns, borrows and holds, and its tensor store."""
    rt = runtime.current()
    return {**rt.stats(), **{"store_" + k: v for k, v in rt.tensor_store_stats().items()}}


class _Measured:
    """What the tests read of an actor's process: its counts and its RSS."""

    def counts(self):
        gc.collect()
        return _counts()

    def rss_kib(self):
        gc.collect()
        trim_heap()
        return rss_kib()


@ferry.remote
class Producer(_Measured):
    """Puts tensors that stay here (the guide's NIXL pattern) and returns
    refs to them."""

    def produce(self, n):
        return ferry.put(torch.ones(n), _tensor_transport="nixl")

    def produce_list(self, k):
        return [ferry.put(torch.full((4,), float(i)), _tensor_transport="nixl") for i in range(k)]


@ferry.remote
class Holder(_Measured):
    """Receives refs inside containers and keeps, reads, or passes them on."""

    def __init__(self, held=None):
        self.held = held

    def pid(self):
        return os.getpid()

    def kinds(self, refs):
        return [type(r).__name__ for r in refs]

    def hold(self, refs):
        self.held = refs
        return len(refs)

    def drop(self):
        self.held = None
        gc.collect()
        return True

    def call_and_keep(self, producer, k):
        """Calls producer.produce_list and keeps the returned ref unread: this
        process owns that return, whose value (in the producer) holds k refs."""
        self.held = producer.produce_list.remote(k)
        ferry.wait([self.held], timeout=GET_TIMEOUT)
        return True

    def held_value(self):
        return self.held

    def get_held(self):
        return ferry.get(list(self.held), timeout=GET_TIMEOUT)

    def sum_held(self):
        """The sum of every tensor the held refs name (pulled here)."""
        values = ferry.get(list(self.held), timeout=GET_TIMEOUT)
        return sum(float(v.sum()) for v in values if isinstance(v, torch.Tensor))

    def wait_then_get(self, refs):
        ready, _ = ferry.wait(list(refs), num_returns=len(refs), timeout=GET_TIMEOUT)
        return ferry.get(ready, timeout=GET_TIMEOUT)

    def pass_held(self, other):
        """Hands the refs it holds to `other` (which keeps them), then drops
        its own copies."""
        n = ferry.get(other.hold.remote(self.held), timeout=GET_TIMEOUT)
        self.held = None
        gc.collect()
        return n
