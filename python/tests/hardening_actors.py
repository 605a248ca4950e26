"""Actor classes for the hardening tests (security, bad inputs, leaks).

Imported lazily by those modules (and by worker processes, through the
PYTHONPATH conftest sets), like ferry_test_actors and rdt_test_actors.
"""
import ctypes
import os
import threading

import torch

import ferry


def trim_heap():
    """Returns the C heap's free pages to the OS (glibc malloc_trim), so that
    RSS measures memory in use rather than what the allocator keeps cached."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def rss_kib(pid="self"):
    """Resident set size of a process in KiB (VmRSS of /proc/<pid>/status)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


class _Common:
    def ping(self):
        return "pong"

    def pid(self):
        return os.getpid()

    def rss_kib(self, trim=False):
        if trim:
            trim_heap()
        return rss_kib()

    def stats(self):
        return ferry.experimental.tensor_store_stats()

    def transfer_errors(self):
        return [r["error"] for r in ferry.experimental.transfer_log() if r["error"]]


@ferry.remote
class TensorSource(_Common):
    """Produces RDT objects (gloo)."""

    @ferry.method(tensor_transport="gloo")
    def make(self, nbytes, fill):
        """A float32 tensor of nbytes bytes, every element == fill."""
        return torch.full((nbytes // 4,), float(fill), dtype=torch.float32)

    @ferry.method(tensor_transport="gloo")
    def make_on(self, device, n):
        """A tensor on `device` ("meta", "cuda", ...) returned over gloo."""
        return torch.ones(n, device=device)

    @ferry.method(tensor_transport="gloo")
    def plain(self, value):
        """A method marked for gloo that returns no tensor."""
        return value

    def unpicklable_result(self):
        return threading.Lock()


@ferry.remote
class TensorSink(_Common):
    """Consumes RDT arguments, returns small plain values."""

    def check(self, t, fill):
        """(numel, every element == fill) of a received tensor."""
        return t.numel(), bool((t == float(fill)).all())

    def first(self, t):
        return float(t[0])
