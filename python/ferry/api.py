"""ferry's top-level functions: init, get, put, wait, kill, remote, and the
cluster's nodes and resources."""
from __future__ import annotations

import inspect
import os
import pickle
from typing import TYPE_CHECKING, Any, Callable, Literal, NoReturn, overload

from ferry import exceptions
from ferry import _core
from ferry._core import ObjectRef
from ferry._private import cluster_address, runtime, serialization, transports
from ferry._private import refs as _refs
from ferry.actor import ActorClass, ActorHandle, _is_amount, check_resources, handle_from_meta
from ferry.remote_function import RemoteFunction

if TYPE_CHECKING:
    from ferry._core import NodeInfo


def init(address: str | None = None, *, num_cpus: float | None = None,
         num_gpus: float | None = None, resources: dict[str, float] | None = None) -> None:
    """Starts ferry in this process (the driver), as ``ray.init``. Optional
    without an address: the first ``.remote()`` does it.

    ``address`` None (and no FERRY_ADDRESS): a single-host runtime inside
    this process, offering ``num_cpus``, ``num_gpus`` and ``resources``.
    ``"auto"``: the cluster ``ferry start`` started on this host.
    ``"IP:PORT"`` (or ``"ferry://IP:PORT"``): the cluster whose head listens
    there; the token is FERRY_TOKEN, else this host's cluster file's when it
    names that address. Connecting takes no resources (ValueError, as Ray);
    ConnectionError when there is no cluster, no token, or the head cannot
    be reached or refuses."""
    if runtime.is_initialized():
        raise RuntimeError("ferry.init() was already called in this process; call "
                           "ferry.shutdown() first")
    if address is None:
        address = os.environ.get("FERRY_ADDRESS") or None
    if address is None:
        runtime.init(runtime.driver_options(
            num_cpus=_amount("num_cpus", num_cpus), num_gpus=_amount("num_gpus", num_gpus),
            resources=None if resources is None else check_resources(resources)))
        return
    if num_cpus is not None or num_gpus is not None:
        raise ValueError("When connecting to an existing cluster, num_cpus and num_gpus must "
                         "not be provided.")
    if resources is not None:
        raise ValueError("When connecting to an existing cluster, resources must not be "
                         "provided.")
    target = cluster_address.resolve(address, cluster_address.temp_dir())
    runtime.init(runtime.driver_options(address=target.address, token=target.token,
                                        node_ip=target.node_ip))


def _amount(name: str, value: float | None) -> float | None:
    if value is not None and not _is_amount(value):
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return None if value is None else float(value)


def nodes() -> list[NodeInfo]:
    """Every node of the cluster, alive or dead, as ``ray.nodes()``: dicts
    with "NodeID" (hex), "Alive", "NodeManagerAddress" (its IP),
    "Resources" (its total) and "AvailableResources" (what is free now)."""
    return runtime.current().nodes()


def timeline(filename: str | None = None) -> list[dict[str, Any]] | None:
    """The recent tasks, calls and tensor transfers of every process of this
    session as Chrome trace events (``ray.timeline``): written to
    ``filename`` as JSON when given (open it in Perfetto or
    chrome://tracing), else returned. Each process keeps its last
    ``FERRY_TIMELINE_SIZE`` tasks and calls and ``FERRY_TRANSFER_LOG_SIZE``
    transfers (docs/observability.md)."""
    from ferry._private import timeline as _timeline  # only when asked

    rt = runtime.current()
    events = _timeline.gather(_core.HeadClient.connect(rt.head_address, rt.token))
    if filename is None:
        return events
    _timeline.write_trace(events, filename)
    return None


def cluster_resources() -> dict[str, float]:
    """The resources of the alive nodes, summed (``ray.cluster_resources()``)."""
    return _sum_resources("Resources")


def available_resources() -> dict[str, float]:
    """The free resources of the alive nodes, summed
    (``ray.available_resources()``)."""
    return _sum_resources("AvailableResources")


def _sum_resources(key: Literal["Resources", "AvailableResources"]) -> dict[str, float]:
    total: dict[str, float] = {}
    for node in nodes():
        if node["Alive"]:
            for name, amount in node[key].items():
                total[name] = total.get(name, 0.0) + amount
    return total


def get_gpu_ids() -> list[int]:
    """The GPUs this process may use, as ``ray.get_gpu_ids()``: the ids in
    FERRY_GPU_IDS (comma-separated, set in an actor given GPUs); [] when
    unset."""
    raw = os.environ.get("FERRY_GPU_IDS", "")
    try:
        return [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"FERRY_GPU_IDS={raw!r} is not a comma-separated list of GPU ids") from None


def shutdown() -> None:
    """Stops every actor of this driver and the runtime. Idempotent."""
    runtime.shutdown()


def is_initialized() -> bool:
    return runtime.is_initialized()


@overload
def remote(target: type, /) -> ActorClass: ...  # type: ignore[misc]  # a class is callable too
@overload
def remote(target: Callable[..., Any], /) -> RemoteFunction: ...
@overload
def remote(**options: Any) -> Callable[[Any], Any]: ...


def remote(*args: Any, **options: Any) -> Any:
    """``@ferry.remote`` or ``@ferry.remote(option=value, ...)`` on a class
    (an actor: num_cpus, max_concurrency, ...) or on a function (a remote
    function: num_returns, num_cpus, max_retries, ...)."""
    def decorate(target: Any) -> ActorClass | RemoteFunction:
        if inspect.isclass(target):
            return (ActorClass(target, options).options(**options) if options
                    else ActorClass(target, {}))
        if callable(target):
            return RemoteFunction(target, options)
        raise TypeError(f"ferry.remote decorates a class or a function, got "
                        f"{type(target).__name__}")
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
    if single:
        return _value(ref_list[0], results[0], _tensor_transport, timeout)
    with _refs.registering_once():  # borrowed refs in all the values: one request per owner
        return [_value(ref, result, _tensor_transport, timeout)
                for ref, result in zip(ref_list, results)]


def _value(ref: ObjectRef, result: tuple[Any, ...], tensor_transport: str | None,
           timeout: float | None) -> Any:
    """One fetched result as a value (or its error raised)."""
    fmt, data, buffers, code, message, rdt, pulled = result
    if code:
        _raise_error(fmt, data, code, message)
    if pulled is not None:
        return _pulled_value(ref, data, buffers, pulled)
    if rdt is not None:
        return _rdt_value(ref, data, buffers, rdt, tensor_transport, timeout)
    return serialization.loads(data, buffers)


def put(value: Any, *, _tensor_transport: str | None = None) -> ObjectRef:
    """Stores ``value`` in this process's object store; returns its ref.

    With ``_tensor_transport="nixl"``, ``"shm"`` or ``"auto"`` the tensors in
    ``value`` stay in this process (no copy) and whoever holds the ref pulls
    them directly, in any process (driver included)."""
    if isinstance(value, ObjectRef):
        raise TypeError("ferry.put of an ObjectRef is not allowed; pass the ref itself")
    transport = transports.normalize(_tensor_transport)
    if transport is None or transport in transports.OBJECT_STORE:
        data, buffers, contained = serialization.dumps(value)
        return runtime.current().put(data, buffers, contained)
    if transport not in transports.ONE_SIDED:
        raise ValueError(
            f"ferry.put(..., _tensor_transport={transport!r}): only the one-sided transports "
            f"{', '.join(transports.ONE_SIDED)} keep a put's tensors in place; '{transport}' "
            f"moves tensors only between members of a collective group (return them from an "
            f"actor method marked tensor_transport={transport!r} instead)")
    data, buffers, tensors, contained = serialization.dumps_rdt(value)
    rt = runtime.current()
    if not tensors:  # nothing to keep in place: an ordinary value
        return rt.put(data, buffers, contained)
    exported = [serialization.export_tensor(t) for t in tensors]
    ref = rt.put_tensors(data, buffers, transport, exported, contained)
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


def get_actor(name: str) -> ActorHandle:
    """The handle of the live actor created with ``.options(name=name)``, as
    ``ray.get_actor``; ValueError when there is none (never created, or
    dead)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"get_actor expects a non-empty actor name, got {name!r}")
    rt = runtime.current()
    info = rt.get_named_actor_info(name)
    if info is None or info["state"] == "DEAD":
        raise ValueError(f"Failed to look up actor with name '{name}'. There is no live actor "
                         f"of that name in this cluster: it was never created, or it died.")
    if not info["handle_meta"]:
        raise ValueError(f"actor '{name}' was not created from Python; its handle cannot be "
                         f"rebuilt here")
    return handle_from_meta(info["actor_id"], info["handle_meta"], rt.session)


def kill(actor: ActorHandle, *, no_restart: bool = True) -> None:
    """Ends the actor's process now; its pending and later calls raise
    ActorDiedError. With ``no_restart=False`` an actor whose ``max_restarts``
    allows is restarted instead (as in Ray), and calls go to the new one."""
    if not isinstance(actor, ActorHandle):
        raise TypeError(f"ferry.kill expects an actor handle, got {type(actor).__name__}")
    runtime.for_handle(actor._session).kill(actor._actor_id, bool(no_restart))
