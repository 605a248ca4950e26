"""Remote functions: ``@ferry.remote`` on a function, ``f.remote(...)``.

A call runs on a pooled worker process of some node (the Head lends one
with the task's resources held while it runs, and reuses it for later
tasks), once its ObjectRef arguments are ready; it returns ObjectRefs the
caller owns, as an actor call does. Ray's options and defaults:
``num_returns=1``, ``num_cpus=1``, ``num_gpus``, ``resources``,
``scheduling_strategy``, ``max_retries=3`` (re-runs after the worker
process died; -1 always) and ``retry_exceptions=False``."""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

from ferry._private import runtime, serialization, transports
from ferry.actor import (_check_num_returns, _check_retries, _check_retry_exceptions,
                         _encode_retry_exceptions, _is_amount, _scheduling_strategy,
                         check_resources)

_TASK_OPTIONS = frozenset({"num_returns", "num_cpus", "num_gpus", "resources",
                           "scheduling_strategy", "max_retries", "retry_exceptions", "name"})
# Ray's default for tasks.
DEFAULT_MAX_RETRIES = 3


def _check_task_options(options: dict[str, Any]) -> dict[str, Any]:
    if "tensor_transport" in options:
        raise ValueError("tensor_transport is only supported on actor methods "
                         "(@ferry.method(tensor_transport=...)); a remote function's returns go "
                         "through the object store")
    unknown = set(options) - _TASK_OPTIONS
    if unknown:
        raise ValueError(f"unknown remote function options: {sorted(unknown)}")
    checked = dict(options)
    if "num_returns" in checked:
        _check_num_returns(checked["num_returns"])
    for key in ("num_cpus", "num_gpus"):
        if checked.get(key) is not None and not _is_amount(checked[key]):
            raise ValueError(f"{key} must be a number >= 0, got {checked[key]!r}")
    if checked.get("resources") is not None:
        checked["resources"] = check_resources(checked["resources"])
    if "scheduling_strategy" in checked:
        checked["scheduling_strategy"] = _scheduling_strategy(checked["scheduling_strategy"])
    if "max_retries" in checked:
        _check_retries("max_retries", checked["max_retries"])
    if "retry_exceptions" in checked:
        checked["retry_exceptions"] = _check_retry_exceptions(checked["retry_exceptions"])
    return checked


class RemoteFunction:
    """What ``@ferry.remote`` makes of a function."""

    def __init__(self, fn: Callable[..., Any], options: dict[str, Any],
                 _checked: bool = False) -> None:
        self._fn = fn
        self._options = options if _checked else _check_task_options(options)
        self._name = options.get("name") or getattr(fn, "__qualname__", fn.__name__)
        try:
            self._signature: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):
            self._signature = None
        self._retry_exceptions = _encode_retry_exceptions(
            self._options.get("retry_exceptions", False))
        functools.update_wrapper(self, fn)

    def options(self, **options: Any) -> RemoteFunction:
        """A copy with other options (Ray's names; see the module)."""
        return RemoteFunction(self._fn, {**self._options, **_check_task_options(options)},
                              _checked=True)

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """An ObjectRef of the result (a list of ``num_returns`` refs when
        the function returns several)."""
        if self._signature is not None:
            try:
                self._signature.bind(*args, **kwargs)
            except TypeError as e:
                raise TypeError(f"bad arguments for remote function {self._name!r}: {e}") from None
        num_returns = self._options.get("num_returns", 1)
        args, kwargs = transports.defer_custom_refs(args, kwargs)
        data, buffers, deps, contained = serialization.dumps_args(args, kwargs, cls=self._fn)
        rt = runtime.current()
        out = rt.submit_task(self._name, self._options, runtime.worker_command(), data, buffers,
                             deps, contained, num_returns,
                             self._options.get("max_retries", DEFAULT_MAX_RETRIES),
                             self._retry_exceptions)
        return out[0] if num_returns == 1 else out

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"remote functions are called with .remote(): use "
                        f"{self._name}.remote(...)")
