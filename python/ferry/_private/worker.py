"""The worker side: build the actor, run its methods, package results.

``execute`` is called by the C++ executor (ferry._core) for every task, with
the arguments already resolved to (format, data, buffers, tensors) tuples
and their object ids. It returns one (format, data, buffers, code, message
[, rdt]) result per return id. An asyncio actor's method calls come to
``execute_async`` instead, which runs them on the actor's event loop.
"""
import asyncio
import inspect
import os
import sys
import traceback
import weakref
from typing import Any

import cloudpickle

from ferry import _core
from ferry._private import refs, runtime, serialization, transports, worker_output
from ferry._private.event_loop import ActorEventLoop, is_asyncio_class
from ferry.exceptions import TASK_ERROR

_actor = None
_loop = None  # an asyncio actor's event loop
_TASK_WORKER = object()  # _actor of a pooled worker
# The tensors this worker returned as RDT objects, by (object id, index),
# while user code still holds them: passed back to this actor, an RDT ref
# yields the very same tensor objects.
_kept: "weakref.WeakValueDictionary[tuple[bytes, int], Any]" = weakref.WeakValueDictionary()


def keep_tensors(object_id, tensors):
    """Remembers the tensors this process keeps for RDT object ``object_id``
    (bytes) while user code holds them, so that the object yields the very
    same tensor objects here."""
    for i, t in enumerate(tensors):
        _kept[(bytes(object_id), i)] = t


def kept_tensor(object_id, index):
    return _kept.get((bytes(object_id), index))


# Decoded retry_exceptions, by their encoding (few distinct ones per actor).
_retry_specs: dict[bytes, Any] = {}


def _retryable(exc, retry_exceptions):
    """Whether ``exc`` is one the caller asked to retry (True or a tuple of
    exception types, pickled; b"" for none)."""
    if not retry_exceptions:
        return False
    spec = _retry_specs.get(retry_exceptions)
    if spec is None:
        spec = _retry_specs[retry_exceptions] = cloudpickle.loads(retry_exceptions)
    return spec is True or (isinstance(spec, tuple) and isinstance(exc, spec))


def _error_result(method, exc, retryable=False):
    """(format, data, buffers, code, message, retryable)."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        data = cloudpickle.dumps((method, tb, exc), protocol=serialization.PROTOCOL)
    except Exception:  # the exception itself cannot be pickled
        data = cloudpickle.dumps((method, tb, None), protocol=serialization.PROTOCOL)
    return ("exception", data, [], TASK_ERROR, tb, retryable)


def _value_result(value, tensor_transport, return_id):
    """(format, data, buffers, code, message, rdt or None, contained refs)."""
    if tensor_transport in transports.OBJECT_STORE:
        data, buffers, contained = serialization.dumps(value)
        return ("pickle5", data, buffers, 0, "", None, contained)
    data, buffers, tensors, contained = serialization.dumps_rdt(value)
    if not tensors:  # nothing to keep in place: an ordinary value
        return ("pickle5", data, buffers, 0, "", None, contained)
    for t in tensors:
        if not t.is_cpu:  # ValueError unless the transport moves tensors on t's device
            _core.check_tensor_device(tensor_transport, str(t.device))
    exported = [serialization.export_tensor(t) for t in tensors]
    keep_tensors(return_id, tensors)
    return ("pickle5", data, buffers, 0, "", (tensor_transport, exported), contained)


def _arg_tensor(object_id, index, exported):
    own = kept_tensor(object_id, index)
    return own if own is not None else serialization.import_tensor(*exported)


def _arg_value(fmt, data, buffers, tensors, object_id):
    if tensors:
        return serialization.loads_rdt(
            data, buffers, [_arg_tensor(object_id, i, t) for i, t in enumerate(tensors)])
    return serialization.loads(data, buffers)


def _call_payload(args, arg_ids):
    """The call's (args, kwargs) (for a creation or a remote function:
    ((registered transports, cls, args, kwargs), {}), where unpickling the
    first registers them here)."""
    _, data, buffers, _ = args[0]
    if len(args) == 1:
        return serialization.loads_args(data, buffers, [])
    with refs.registering_once():  # refs in every argument: one request per owner
        deps = [_arg_value(*a, oid) for a, oid in zip(args[1:], arg_ids[1:])]
        return serialization.loads_args(data, buffers, deps)


def _results(method, result, return_ids, tensor_transport):
    """One result tuple per return id for the method's return value."""
    try:
        n = len(return_ids)
        if n == 1:
            return [_value_result(result, tensor_transport, return_ids[0])]
        if n == 0:
            return []
        values = list(result)
        if len(values) != n:
            raise ValueError(f"{method} was declared with num_returns={n} but returned "
                             f"{len(values)} values")
        return [_value_result(v, tensor_transport, rid) for v, rid in zip(values, return_ids)]
    except Exception as exc:
        return [_error_result(method, exc)] * n


def _errors(method, exc, return_ids, retry_exceptions):
    error = _error_result(method, exc, _retryable(exc, retry_exceptions))
    return [error] * max(1, len(return_ids))


def execute(method, is_creation, return_ids, args, arg_ids, tensor_transport,
            retry_exceptions=b"", max_concurrency=1):
    global _actor, _loop
    try:
        if is_creation and not args:  # a pooled worker: it runs remote functions
            _actor = _TASK_WORKER
            return []
        payload = _call_payload(args, arg_ids)
        if _actor is _TASK_WORKER:
            return _run_function(method, payload, return_ids, retry_exceptions)
        if is_creation:
            (_, cls, call_args, call_kwargs), _ = payload  # unpickling registered transports
            _actor = cls(*call_args, **call_kwargs)
            if is_asyncio_class(cls):
                _loop = ActorEventLoop(max_concurrency)
            return []
        call_args, call_kwargs = payload
        result = getattr(_actor, method)(*call_args, **call_kwargs)
    except Exception as exc:  # user code raised: an application error
        if is_creation:
            return [_error_result(method, exc)]
        return _errors(method, exc, return_ids, retry_exceptions)
    return _results(method, result, return_ids, tensor_transport)


def _run_function(name, payload, return_ids, retry_exceptions):
    """A remote function's call: ((registered transports, function, args,
    kwargs), {})."""
    (_, fn, call_args, call_kwargs), _ = payload
    worker_output.announce(name)
    try:
        call_args, call_kwargs = _fetch_deferred(call_args, call_kwargs)
        result = fn(*call_args, **call_kwargs)
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
    except Exception as exc:
        return _errors(name, exc, return_ids, retry_exceptions)
    return _results(name, result, return_ids, "")


def _fetch_deferred(args, kwargs):
    """Fetches the arguments the caller deferred (transports.Deferred)."""
    deferred = [a.ref for a in (*args, *kwargs.values()) if isinstance(a, transports.Deferred)]
    if not deferred:
        return args, kwargs
    from ferry import api
    values = iter(api.get(deferred))
    args = tuple(next(values) if isinstance(a, transports.Deferred) else a for a in args)
    kwargs = {k: next(values) if isinstance(v, transports.Deferred) else v
              for k, v in kwargs.items()}
    return args, kwargs


def execute_async(method, return_ids, args, arg_ids, tensor_transport, retry_exceptions, finish):
    """An asyncio actor's call: decoded here, run on the actor's event loop,
    which calls ``finish(results)`` once."""
    try:
        call_args, call_kwargs = _call_payload(args, arg_ids)
    except Exception as exc:
        finish(_errors(method, exc, return_ids, retry_exceptions))
        return

    async def run():
        try:
            result = getattr(_actor, method)(*call_args, **call_kwargs)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            return _errors(method, exc, return_ids, retry_exceptions)
        return _results(method, result, return_ids, tensor_transport)

    _loop.submit(run, finish)


def main():
    extra = os.environ.get("FERRY_SYS_PATH")
    if extra:
        for p in reversed(extra.split(os.pathsep)):
            if p not in sys.path:
                sys.path.insert(0, p)
    worker_output.line_buffered()
    rt = runtime.start_worker()
    try:
        rt.run_worker(execute, execute_async)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        # User threads or C++ state must not keep a finished worker alive.
        os._exit(0)
