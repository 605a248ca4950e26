"""The event loop of an asyncio actor (one with ``async def`` methods).

Every method call of such an actor runs as a coroutine on one loop thread, as
in Ray: ``async def`` methods interleave at their ``await``s, plain methods
run to completion on the loop. At most ``max_concurrency`` calls are in
flight; the others wait on the loop in arrival order."""
from __future__ import annotations

import asyncio
import inspect
import threading
from typing import Any, Awaitable, Callable

# Ray's default max_concurrency for an asyncio actor.
DEFAULT_MAX_CONCURRENCY = 1000


def is_asyncio_class(cls: type) -> bool:
    """Whether ``cls`` has an ``async def`` (or async generator) method."""
    return any(inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)
               for _, fn in inspect.getmembers(cls, predicate=inspect.isfunction))


class ActorEventLoop:
    """A loop on its own daemon thread ("ferry-asyncio")."""

    def __init__(self, max_concurrency: int) -> None:
        self._loop = asyncio.new_event_loop()
        self._slots = asyncio.Semaphore(max(1, max_concurrency))
        self._running: set[asyncio.Task[None]] = set()
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.call_soon(started.set)
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="ferry-asyncio", daemon=True)
        self._thread.start()
        started.wait()

    def submit(self, call: Callable[[], Awaitable[list[Any]]],
               finish: Callable[[list[Any]], None]) -> None:
        """Runs ``call()`` on the loop when a slot is free, then
        ``finish(its results)``. Thread-safe; returns at once."""
        async def guarded() -> None:
            async with self._slots:
                results = await call()
            finish(results)

        def start() -> None:
            task = self._loop.create_task(guarded())
            self._running.add(task)  # the loop holds tasks weakly
            task.add_done_callback(self._running.discard)

        self._loop.call_soon_threadsafe(start)
