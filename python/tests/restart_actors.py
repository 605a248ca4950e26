"""Actors for the restart and retry tests: they count calls per process,
die on request and raise on request, so a test can tell a restarted
process (fresh constructor state, new pid) from the old one."""
import os

import torch

import ferry


def _die():
    os._exit(1)


def die_once(marker):
    """Exits the process the first time it runs with `marker` (a file
    path), so that a retried call succeeds."""
    if not os.path.exists(marker):
        with open(marker, "w"):
            pass
        _die()


class _CallCounter:
    """Counts calls in this process and raises on the first `fail` calls."""

    def __init__(self, start=0):
        self.count = start
        self.calls = 0

    def incr(self):
        self.count += 1
        return self.count

    def pid(self):
        return os.getpid()

    def die(self):
        _die()

    def die_once(self, marker):
        die_once(marker)
        return os.getpid()

    def flaky(self, fail, exc="ValueError"):
        """Raises `exc` on the first `fail` calls of this process."""
        self.calls += 1
        if self.calls <= fail:
            raise {"ValueError": ValueError, "KeyError": KeyError}[exc](f"attempt {self.calls}")
        return self.calls


@ferry.remote
class Counter(_CallCounter):
    pass


@ferry.remote
class Retrying(_CallCounter):
    """Methods with their retry options in decorators."""

    @ferry.method(max_task_retries=2, retry_exceptions=True)
    def flaky_any(self, fail):
        return self.flaky(fail)

    @ferry.method(max_task_retries=2, retry_exceptions=[ValueError])
    def flaky_value_error(self, fail, exc="ValueError"):
        return self.flaky(fail, exc)


@ferry.remote
class Producer(_CallCounter):
    """Returns tensors that stay here (one-sided `nixl`: no group needed)."""

    @ferry.method(tensor_transport="nixl")
    def tensor(self, n, value):
        return torch.full((n,), float(value))

    @ferry.method(tensor_transport="nixl", max_task_retries=1, retry_exceptions=[ValueError])
    def flaky_tensor(self, n, fail):
        """Raises ValueError on the first `fail` calls, then returns a tensor
        of the attempt's number."""
        return torch.full((n,), float(self.flaky(fail)))

    @ferry.method(tensor_transport="nixl", max_task_retries=1)
    def tensor_after_dying_once(self, n, marker):
        die_once(marker)
        return torch.full((n,), float(os.getpid()))


@ferry.remote
class Consumer:
    def total(self, t):
        return float(t.sum())
