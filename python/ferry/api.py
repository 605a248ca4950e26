"""ferry's top-level functions: init, get, put, wait, kill, remote."""
from __future__ import annotations

import inspect
import pickle
from typing import Any, Callable, NoReturn, overload

from ferry import exceptions
from ferry._core import ObjectRef
from ferry._private import runtime, serialization, transports
from ferry.actor import ActorClass, ActorHandle


def init(address: str | None = None, *, num_cpus: float | None = None,
         num_gpus: float | None = None) -> None:
    """Starts ferry in this process (the driver). Optional: the first
    ``.remote()`` does it. ``address`` (cluster mode) is not supported yet."""
    if address is not None:
        raise NotImplementedError("ferry.init(address=...) (cluster mode) is not supported yet; "
                                  "call ferry.init() to run on this host")
    runtime.init()


def shutdown() -> None:
    """Stops every actor of this driver and the runtime. Idempotent."""
    runtime.shutdown()


def is_initialized() -> bool:
    return runtime.is_initialized()


@overload
def remote(cls: type, /) -> ActorClass: ...
@overload
def remote(**options: Any) -> Callable[[type], ActorClass]: ...


def remote(*args: Any, **options: Any) -> ActorClass | Callable[[type], ActorClass]:
    """``@ferry.remote`` or ``@ferry.remote(num_cpus=..., max_concurrency=...)`` on a class."""
    def decorate(target: type) -> ActorClass:
        if not inspect.isclass(target):
            raise TypeError("ferry.remote supports classes (actors); remote functions are not "
                            "supported yet")
        return ActorClass(target, options).options(**options) if options else ActorClass(target, {})
    if len(args) == 1 and not options and callable(args[0]):
        return decorate(args[0])
    if args:
        raise TypeError("use @ferry.remote or @ferry.remote(option=value, ...)")
    return decorate


def _raise_error(fmt: str, data: Any, code: int, message: str) -> NoReturn:
    if code == exceptions.TASK_ERROR and fmt == "exception":
        method, tb, cause = pickle.loads(data)
        raise exceptions.make_task_error(method, tb, cause)
    raise exceptions.error_for_status(code, message)


def _pulled_value(ref: ObjectRef, data: Any, buffers: list[Any], pulled: list[Any]) -> Any:
    """The value of a one-sided RDT ref whose tensors were pulled here."""
    from ferry._private import worker
    key = ref.binary()
    tensors = []
    for i, (capsule, dtype, shape, strides) in enumerate(pulled):
        own = worker.kept_tensor(key, i)  # this process made it: the same tensor object
        tensors.append(own if own is not None
                       else serialization.import_tensor(capsule, dtype, shape, strides))
    return serialization.loads_rdt(data, buffers, tensors)


def _rdt_value(ref: ObjectRef, data: Any, buffers: list[Any], rdt: tuple[str, list[Any]],
               tensor_transport: str | None, timeout: float | None) -> Any:
    transport, metas = rdt
    chosen = (tensor_transport or transport).lower()
    if chosen not in transports.OBJECT_STORE + transports.ONE_SIDED:
        raise ValueError(
            "Currently ray.get() only supports OBJECT_STORE and NIXL tensor transport, got "
            f"TensorTransportEnum.{transport.upper()}, please specify the correct tensor transport "
            f"in ray.get(). ferry: this object's tensors stay in the actor that made it and move "
            f"over '{transport}' only between members of a collective group; pass "
            f'_tensor_transport="object_store" to fetch them through the object store.')
    fetched = runtime.current().fetch_tensors(ref, timeout)
    tensors = [serialization.tensor_from_buffer(buf, dtype, shape, strides)
               for buf, (dtype, shape, _, _, strides) in zip(fetched, metas)]
    return serialization.loads_rdt(data, buffers, tensors)


@overload
def get(refs: ObjectRef, *, timeout: float | None = None, _tensor_transport: str | None = None,
        _use_object_store: bool = False) -> Any: ...
@overload
def get(refs: list[ObjectRef] | tuple[ObjectRef, ...], *, timeout: float | None = None,
        _tensor_transport: str | None = None, _use_object_store: bool = False) -> list[Any]: ...


def get(refs: ObjectRef | list[ObjectRef] | tuple[ObjectRef, ...], *, timeout: float | None = None,
        _tensor_transport: str | None = None, _use_object_store: bool = False) -> Any:
    """The value of an ObjectRef, or a list of values for a list of refs.
    Raises the task's error (TaskError), ActorDiedError, ObjectLostError, or
    GetTimeoutError after ``timeout`` seconds. For RDT objects of a
    collective transport pass ``_tensor_transport="object_store"`` (or
    ``_use_object_store=True``) to fetch the tensors through the object store."""
    single = isinstance(refs, ObjectRef)
    if not single and not isinstance(refs, (list, tuple)):
        raise TypeError(f"ferry.get expects an ObjectRef or a list of them, got "
                        f"{type(refs).__name__}")
    ref_list = [refs] if isinstance(refs, ObjectRef) else list(refs)
    for r in ref_list:
        if not isinstance(r, ObjectRef):
            raise TypeError(f"ferry.get expects an ObjectRef or a list of them, got "
                            f"{type(r).__name__}")
    if timeout is not None and timeout < 0:
        raise ValueError("timeout must be >= 0 or None")
    if _use_object_store:
        _tensor_transport = "object_store"
    _tensor_transport = transports.normalize(_tensor_transport)
    # One-sided RDT tensors are pulled inside the same call, all refs at once.
    pull = _tensor_transport is None or _tensor_transport in transports.ONE_SIDED
    results = runtime.current().get(ref_list, timeout, pull)
    values = []
    for ref, (fmt, data, buffers, code, message, rdt, pulled) in zip(ref_list, results):
        if code:
            _raise_error(fmt, data, code, message)
        if pulled is not None:
            values.append(_pulled_value(ref, data, buffers, pulled))
        elif rdt is not None:
            values.append(_rdt_value(ref, data, buffers, rdt, _tensor_transport, timeout))
        else:
            values.append(serialization.loads(data, buffers))
    return values[0] if single else values


def put(value: Any, *, _tensor_transport: str | None = None) -> ObjectRef:
    """Stores ``value`` in this process's object store; returns its ref.

    With ``_tensor_transport="nixl"``, ``"shm"`` or ``"auto"`` the tensors in
    ``value`` stay in this process (no copy) and whoever holds the ref pulls
    them directly, in any process (driver included)."""
    if isinstance(value, ObjectRef):
        raise TypeError("ferry.put of an ObjectRef is not allowed; pass the ref itself")
    transport = transports.normalize(_tensor_transport)
    if transport is None or transport in transports.OBJECT_STORE:
        data, buffers = serialization.dumps(value)
        return runtime.current().put(data, buffers)
    if transport not in transports.ONE_SIDED:
        raise ValueError(
            f"ferry.put(..., _tensor_transport={transport!r}): only the one-sided transports "
            f"{', '.join(transports.ONE_SIDED)} keep a put's tensors in place; '{transport}' "
            f"moves tensors only between members of a collective group (return them from an "
            f"actor method marked tensor_transport={transport!r} instead)")
    data, buffers, tensors = serialization.dumps_rdt(value)
    rt = runtime.current()
    if not tensors:  # nothing to keep in place: an ordinary value
        return rt.put(data, buffers)
    exported = [serialization.export_tensor(t) for t in tensors]
    ref = rt.put_tensors(data, buffers, transport, exported)
    from ferry._private import worker
    worker.keep_tensors(ref.binary(), tensors)
    return ref


def wait(refs: list[ObjectRef] | tuple[ObjectRef, ...], *, num_returns: int = 1,
         timeout: float | None = None) -> tuple[list[ObjectRef], list[ObjectRef]]:
    """-> (ready, not_ready): the first ``num_returns`` refs that are ready
    (in the order given), once that many are or ``timeout`` passed."""
    if not isinstance(refs, (list, tuple)):
        raise TypeError(f"ferry.wait expects a list of ObjectRefs, got {type(refs).__name__}")
    refs = list(refs)
    for r in refs:
        if not isinstance(r, ObjectRef):
            raise TypeError(f"ferry.wait expects ObjectRefs, got {type(r).__name__}")
    if timeout is not None and timeout < 0:
        raise ValueError("timeout must be >= 0 or None")
    if not 0 <= num_returns <= len(refs):
        raise ValueError(f"num_returns must be between 0 and {len(refs)}, got {num_returns}")
    flags = runtime.current().wait(refs, num_returns, timeout)
    ready: list[ObjectRef] = []
    not_ready: list[ObjectRef] = []
    for ref, ok in zip(refs, flags):
        (ready if ok and len(ready) < num_returns else not_ready).append(ref)
    return ready, not_ready


def kill(actor: ActorHandle) -> None:
    """Ends the actor's process now; its pending and later calls raise
    ActorDiedError."""
    if not isinstance(actor, ActorHandle):
        raise TypeError(f"ferry.kill expects an actor handle, got {type(actor).__name__}")
    runtime.for_handle(actor._session).kill(actor._actor_id)
