"""Actor classes for the asyncio and RDT-API tests (imported by the workers
by name, so they live in a module of their own)."""
import asyncio
import os

import torch

import ferry


@ferry.remote
class AsyncCounter:
    """An asyncio actor: calls interleave at their awaits."""

    def __init__(self):
        self.n = 0
        self.running = 0
        self.max_running = 0

    async def incr(self, k=1):
        self.n += k
        return self.n

    def value(self):  # a plain method of an asyncio actor runs on its loop
        return self.n

    async def hold(self, signal):
        """Runs until ``signal`` is sent; returns the most calls of this
        actor seen running at once."""
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        await signal.arrive.remote()
        await signal.wait.remote()
        self.running -= 1
        return self.max_running

    async def fail(self):
        await asyncio.sleep(0)
        raise KeyError("async boom")

    async def await_ref(self, refs):
        """Awaits a ref passed nested (a borrowed ref) from inside the loop."""
        return await refs[0]

    async def gather(self, refs):
        return sum(await asyncio.gather(*refs))

    async def pid(self):
        return os.getpid()


@ferry.remote
class Signal:
    """Counts arrivals; ``wait`` returns once ``send`` was called."""

    def __init__(self):
        self.arrived = 0
        self.event = None

    def _event(self):
        if self.event is None:
            self.event = asyncio.Event()
        return self.event

    async def arrive(self):
        self.arrived += 1

    async def arrivals(self):
        return self.arrived

    async def wait(self):
        await self._event().wait()

    async def send(self):
        self._event().set()


@ferry.remote
class Adder:
    def add(self, a, b):
        return a + b

    def tensor(self, n):
        return torch.arange(n, dtype=torch.float32)


@ferry.remote
class AsyncTensors:
    @ferry.method(tensor_transport="nixl")
    async def make(self, n):
        await asyncio.sleep(0)
        return torch.arange(n, dtype=torch.float32)

    async def total(self, t):
        return float(t.sum())


@ferry.remote
class Plain:
    """No method is decorated with a tensor transport."""

    def make(self, n):
        return torch.ones(n)

    def total(self, t):
        return float(t.sum())


@ferry.remote
class Decorated:
    @ferry.method(tensor_transport="nixl")
    def make(self, n):
        return torch.ones(n)

    def make_plain(self, n):
        return torch.ones(n)

    def total(self, t):
        return float(t.sum())
