"""Actor classes used by the tests, declared the way users declare them.

Imported by the `actors` fixture (and by worker processes, through PYTHONPATH)
rather than at test-module import, so the suite collects before the package
exists.
"""
import hashlib
import os
import threading
import time

import numpy as np

import ferry


class MyError(Exception):
    """A user exception class the driver catches by its own type."""


def _inner_fail(msg):
    # A distinctive frame name the remote traceback must show.
    raise ValueError(msg)


@ferry.remote
class Counter:
    def __init__(self, start, step=1):
        self.value = start
        self.step = step
        self.log = []

    def get(self):
        return self.value

    def incr(self):
        self.value += self.step
        return self.value

    def append(self, i):
        self.log.append(i)
        return len(self.log)

    def get_log(self):
        return list(self.log)

    def pid(self):
        return os.getpid()

    def ping(self):
        return "pong"


@ferry.remote
class Echo:
    def echo(self, *args, **kwargs):
        return args, kwargs

    def kinds(self, *args, **kwargs):
        """Type names of what the method received, nested like the arguments."""
        def kind(x):
            if isinstance(x, list):
                return [kind(v) for v in x]
            if isinstance(x, tuple):
                return tuple(kind(v) for v in x)
            if isinstance(x, dict):
                return {k: kind(v) for k, v in x.items()}
            return type(x).__name__
        return kind(list(args)), kind(kwargs)

    def add(self, x, y):
        return x + y

    def inc(self, x):
        return x + 1

    def slow_value(self, value, delay):
        time.sleep(delay)  # workload: the result is not ready for a while
        return value

    def echo_array(self, a):
        return a

    def array_stats(self, a):
        return a.shape, str(a.dtype), hashlib.sha256(a.tobytes()).hexdigest(), float(a[-1])

    def make_array(self, n, mult):
        return np.arange(n, dtype=np.int64) * mult

    def sum(self, a):
        return int(a.sum())

    def fail(self, msg):
        _inner_fail(msg)

    def fail_custom(self, msg):
        raise MyError(msg)

    def pid(self):
        return os.getpid()

    def ping(self):
        return "pong"

    def crash(self):
        os._exit(1)

    def pair(self, x):
        return x, x + 1

    @ferry.method(num_returns=2)
    def split(self, x):
        return x * 10, x * 100


@ferry.remote
class Probe:
    """Records how many calls ran at once (default max_concurrency=1)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0

    def enter(self, hold_s):
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        time.sleep(hold_s)  # workload: hold the slot so overlaps would show
        with self.lock:
            self.active -= 1
        return True

    def max_seen(self):
        return self.max_active


@ferry.remote(max_concurrency=2)
class Gate:
    """Two calls must be inside at once for rendezvous() to succeed."""

    def __init__(self):
        self.barrier = threading.Barrier(2)
        self.event = threading.Event()

    def rendezvous(self, timeout_s):
        self.barrier.wait(timeout=timeout_s)  # BrokenBarrierError if calls are serialized
        return True

    def wait_release(self, timeout_s):
        return self.event.wait(timeout_s)

    def release(self):
        self.event.set()
        return True

    def ping(self):
        return "pong"
