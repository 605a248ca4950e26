"""ObjectRefs as futures: ``ref.future()`` (a ``concurrent.futures.Future``),
``await ref`` and ``ref.as_future()`` (asyncio), in the driver, in actors
(asyncio ones included) and in tasks.

The runtime tells one daemon thread ("ferry-futures") which refs became
ready (``Runtime.watch_ready`` / ``next_ready``: no thread waits per ref);
that thread then reads each value with ``ferry.get``, so a future's result
is exactly what ``get`` returns and its exception what ``get`` raises."""
from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import threading
from typing import Any

from ferry import _core
from ferry._private import runtime


class _Watcher:
    """The refs one runtime watches for, and the thread that completes their
    futures."""

    def __init__(self, rt: _core.Runtime) -> None:
        self._rt = rt
        self._lock = threading.Lock()
        self._tokens = itertools.count(1)
        self._pending: dict[int, tuple[_core.ObjectRef, concurrent.futures.Future[Any]]] = {}
        self._thread = threading.Thread(target=self._run, name="ferry-futures", daemon=True)
        self._thread.start()

    def watch(self, ref: _core.ObjectRef) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            token = next(self._tokens)
            self._pending[token] = (ref, future)
        self._rt.watch_ready(ref, token)
        return future

    def _run(self) -> None:
        from ferry import api
        while True:
            tokens = self._rt.next_ready()
            if tokens is None:  # the runtime shut down
                break
            for token in tokens:
                with self._lock:
                    ref, future = self._pending.pop(token)
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    future.set_result(api.get(ref))
                except BaseException as e:  # noqa: BLE001  (the future carries it)
                    future.set_exception(e)
        self._fail_pending()

    def _fail_pending(self) -> None:
        from ferry.exceptions import FerryError
        with self._lock:
            pending, self._pending = self._pending, {}
        for _, future in pending.values():
            if future.set_running_or_notify_cancel():
                future.set_exception(FerryError("ferry shut down before the object was ready"))


_lock = threading.Lock()
_watcher: _Watcher | None = None


def future(ref: _core.ObjectRef) -> concurrent.futures.Future[Any]:
    """A ``concurrent.futures.Future`` of ``ferry.get(ref)``."""
    global _watcher
    rt = runtime.current()
    with _lock:
        if _watcher is None or _watcher._rt is not rt:  # first use, or a new session
            _watcher = _Watcher(rt)
        watcher = _watcher
    return watcher.watch(ref)


def as_future(ref: _core.ObjectRef) -> asyncio.Future[Any]:
    """An asyncio future of ``ferry.get(ref)`` on the running loop."""
    return asyncio.wrap_future(future(ref))


def _await(ref: _core.ObjectRef) -> Any:
    return as_future(ref).__await__()


def install() -> None:
    """Makes ObjectRefs awaitable and gives them ``future()``/``as_future()``."""
    setattr(_core.ObjectRef, "future", future)
    setattr(_core.ObjectRef, "as_future", as_future)
    setattr(_core.ObjectRef, "__await__", _await)
