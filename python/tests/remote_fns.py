"""Remote functions for the remote-function tests (imported by the pooled
workers by name, so they live in a module of their own)."""
import asyncio
import os
import time

import ferry


@ferry.remote
def add(a, b):
    return a + b


@ferry.remote
def pid():
    return os.getpid()


@ferry.remote(num_returns=2)
def split(x):
    return x // 2, x - x // 2


@ferry.remote
def total(values):
    """`values` holds ObjectRefs (nested: passed as refs, as in Ray)."""
    return sum(ferry.get(values, timeout=60))


@ferry.remote
def fan_out(n):
    """A task that submits tasks and waits for them."""
    return sum(ferry.get([add.remote(i, i) for i in range(n)], timeout=60))


@ferry.remote
def make_refs(n):
    return [ferry.put(i) for i in range(n)]


@ferry.remote
def fail(message):
    raise KeyError(message)


def _bump(path):
    """Counts attempts in a file; returns this attempt's number (1-based)."""
    with open(path, "a+") as f:
        f.write("x")
        f.seek(0)
        return len(f.read())


@ferry.remote
def die_until(path, attempts):
    """Kills its own worker process on the first `attempts` - 1 tries."""
    n = _bump(path)
    if n < attempts:
        os._exit(9)
    return n


@ferry.remote
def raise_until(path, attempts):
    n = _bump(path)
    if n < attempts:
        raise ConnectionError(f"flaky attempt {n}")
    return n


@ferry.remote
def hold(path):
    """Holds its CPU (never waiting in ferry.get, which would lend it out)
    until the file `path` exists; notes its start in `path`.started."""
    with open(path + ".started", "a") as f:
        f.write(f"{os.getpid()}\n")
    deadline = time.monotonic() + 60
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.005)
    return os.getpid()


@ferry.remote
async def async_add(a, b):
    await asyncio.sleep(0)
    return a + b


@ferry.remote
class Caller:
    """An actor that calls remote functions."""

    def add_via_task(self, a, b):
        return ferry.get(add.remote(a, b), timeout=60)


@ferry.remote
def depth(n):
    """Recursion through tasks: each level waits in get for the next."""
    if n == 0:
        return 0
    return 1 + ferry.get(depth.remote(n - 1), timeout=60)
