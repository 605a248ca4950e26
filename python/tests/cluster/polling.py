"""Waiting on a condition with a deadline, for the cluster harness (netns.py)
and the driver scripts it runs (driver_lib.py): one module neither imports
ferry from, so both sides can use it."""
from __future__ import annotations

import time
from typing import Any, Callable


def wait_for(pred: Callable[[], Any], timeout: float, interval: float = 0.02) -> Any:
    """Polls pred() until it is truthy or timeout seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
