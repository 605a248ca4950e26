"""Actors: ``@ferry.remote`` classes, their handles and methods."""
from __future__ import annotations

import inspect
import warnings
from typing import Any, Callable, TypeVar

import cloudpickle

from ferry._private import runtime, serialization, transports
from ferry._private.event_loop import DEFAULT_MAX_CONCURRENCY, is_asyncio_class
from ferry.util.scheduling_strategies import NodeAffinitySchedulingStrategy

_METHOD_OPTIONS = "__ferry_method_options__"
_F = TypeVar("_F", bound=Callable[..., Any])
_ACTOR_OPTIONS = frozenset({"name", "num_cpus", "num_gpus", "max_concurrency", "resources",
                            "scheduling_strategy", "max_restarts", "max_task_retries",
                            "enable_tensor_transport"})


def _check_num_returns(n: Any) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"num_returns must be an int >= 0, got {n!r}")
    return n


def _check_retries(name: str, n: Any) -> int:
    """A count of restarts or retries: an int >= 0, or -1 for unbounded."""
    if not isinstance(n, int) or isinstance(n, bool) or n < -1:
        raise ValueError(f"{name} must be an int >= 0, or -1 for unbounded, got {n!r}")
    return n


def _check_retry_exceptions(spec: Any) -> bool | tuple[type, ...]:
    """Ray's retry_exceptions: a bool, or a list of exception types."""
    if isinstance(spec, bool):
        return spec
    if isinstance(spec, (list, tuple)) and all(
            isinstance(t, type) and issubclass(t, BaseException) for t in spec):
        return tuple(spec)
    raise ValueError(f"retry_exceptions must be either a boolean or a list of exceptions, "
                     f"got {spec!r}")


def _encode_retry_exceptions(spec: bool | tuple[type, ...]) -> bytes:
    """What the worker matches a raised exception against; b"" for none."""
    return cloudpickle.dumps(spec) if spec else b""


def _is_amount(x: Any) -> bool:
    """A number >= 0 (not a bool), as Ray accepts for resource amounts."""
    return (isinstance(x, (int, float)) and not isinstance(x, bool)
            and 0 <= x < float("inf"))


def check_resources(resources: Any, what: str = "resources") -> dict[str, float]:
    """A ``{name: amount >= 0}`` dict of custom resources, amounts as floats;
    ValueError otherwise (its message starts with ``what``). CPU and GPU are
    refused with Ray's message: they have their own options."""
    if not isinstance(resources, dict):
        raise ValueError(f"{what} must be a dict of resource name -> amount, got "
                         f"{type(resources).__name__}")
    for name, amount in resources.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"{what}: a resource name must be a non-empty str, got {name!r}")
        if name in ("CPU", "GPU"):
            raise ValueError(f"{what}: use the 'num_cpus' and 'num_gpus' keyword instead of "
                             f"'CPU' and 'GPU' in 'resources' keyword")
        if not _is_amount(amount):
            raise ValueError(f"{what}: the amount of resource {name!r} must be a number >= 0, "
                             f"got {amount!r}")
    return {name: float(amount) for name, amount in resources.items()}


def _scheduling_strategy(strategy: Any) -> Any:
    """The strategy as the runtime takes it: None, "DEFAULT", "SPREAD" or
    ("node_affinity", node_id_hex, soft)."""
    if strategy is None or strategy in ("DEFAULT", "SPREAD"):
        return strategy
    if isinstance(strategy, NodeAffinitySchedulingStrategy):
        return ("node_affinity", strategy.node_id, strategy.soft)
    raise ValueError(f"scheduling_strategy must be None, \"DEFAULT\", \"SPREAD\" or a "
                     f"NodeAffinitySchedulingStrategy, got {strategy!r}")


def _check_actor_options(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` validated, in the form ``create_actor`` takes."""
    unknown = set(options) - _ACTOR_OPTIONS
    if unknown:
        raise ValueError(f"unknown actor options: {sorted(unknown)}")
    checked = dict(options)
    for key in ("num_cpus", "num_gpus"):
        if checked.get(key) is not None and not _is_amount(checked[key]):
            raise ValueError(f"{key} must be a number >= 0, got {checked[key]!r}")
    for key in ("max_restarts", "max_task_retries"):
        if checked.get(key) is not None:
            _check_retries(key, checked[key])
    if checked.get("max_concurrency") is not None:
        n = checked["max_concurrency"]
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"max_concurrency must be an int >= 1, got {n!r}")
    if checked.get("enable_tensor_transport") is not None and not isinstance(
            checked["enable_tensor_transport"], bool):
        raise ValueError(f"enable_tensor_transport must be a bool, got "
                         f"{checked['enable_tensor_transport']!r}")
    if checked.get("resources") is not None:
        checked["resources"] = check_resources(checked["resources"])
    if "scheduling_strategy" in checked:
        checked["scheduling_strategy"] = _scheduling_strategy(checked["scheduling_strategy"])
    return checked


def method(*, num_returns: int = 1, tensor_transport: str | None = None,
           max_task_retries: int | None = None,
           retry_exceptions: bool | list[type] = False) -> Callable[[_F], _F]:
    """``@ferry.method(num_returns=2, tensor_transport="gloo")`` on an actor method.

    ``max_task_retries`` (default: the actor's) re-runs a call that failed
    because the actor died (it must be restartable: ``max_restarts``) and,
    with ``retry_exceptions`` (True, or a list of exception types), one that
    raised a matching exception; -1 retries without bound."""
    opts = {"num_returns": _check_num_returns(num_returns),
            "tensor_transport": transports.normalize(tensor_transport),
            "max_task_retries": (None if max_task_retries is None
                                 else _check_retries("max_task_retries", max_task_retries)),
            "retry_exceptions": _check_retry_exceptions(retry_exceptions)}

    def decorate(fn: _F) -> _F:
        setattr(fn, _METHOD_OPTIONS, opts)
        return fn
    return decorate


class _MethodMeta:
    """What a caller needs to know of one method: its signature (to reject
    bad arguments at ``.remote``) and its default options."""
    __slots__ = ("name", "signature", "num_returns", "tensor_transport", "max_task_retries",
                 "retry_exceptions", "_positional")

    name: str
    signature: inspect.Signature | None
    num_returns: int
    tensor_transport: str | None
    max_task_retries: int | None  # None: the actor's
    retry_exceptions: bytes  # encoded for the worker; b"": none
    _positional: tuple[int, float] | None

    def __init__(self, name: str, fn: Callable[..., Any]) -> None:
        self.name = name
        opts = getattr(fn, _METHOD_OPTIONS, {})
        self.num_returns = opts.get("num_returns", 1)
        self.tensor_transport = opts.get("tensor_transport")
        self.max_task_retries = opts.get("max_task_retries")
        self.retry_exceptions = _encode_retry_exceptions(opts.get("retry_exceptions", False))
        try:
            sig = inspect.signature(fn)
            params = list(sig.parameters.values())[1:]  # drop self
            self.signature = sig.replace(parameters=params)
        except (TypeError, ValueError):
            self.signature = None
        self._positional = _positional_range(self.signature)

    def check_args(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        # Fast path for the common call: positional arguments only.
        if not kwargs and self._positional and self._positional[0] <= len(args) <= self._positional[1]:
            return
        if self.signature is not None:
            try:
                self.signature.bind(*args, **kwargs)
            except TypeError as e:
                raise TypeError(f"bad arguments for actor method {self.name!r}: {e}") from None

    def __reduce__(self) -> tuple[Any, ...]:
        # The inspect.Signature pickles fine by value.
        return _rebuild_meta, (self.name, self.signature, self.num_returns, self.tensor_transport,
                               self.max_task_retries, self.retry_exceptions)


def _positional_range(signature: inspect.Signature | None) -> tuple[int, float] | None:
    """(min, max) positional arguments when a purely positional call can be
    checked by counting; None when the full binder is needed."""
    if signature is None:
        return None
    lo = 0
    hi: float = 0
    for p in signature.parameters.values():
        if p.kind == p.VAR_POSITIONAL:
            hi = float("inf")
        elif p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            hi += 1
            lo += p.default is p.empty
        elif p.kind == p.KEYWORD_ONLY and p.default is p.empty:
            return None
    return lo, hi


def _collect_methods(cls: type) -> dict[str, _MethodMeta]:
    methods = {}
    for name, fn in inspect.getmembers(cls, predicate=inspect.isfunction):
        if name.startswith("__") and name != "__call__":
            continue
        methods[name] = _MethodMeta(name, fn)
    return methods


class ActorMethod:
    """``handle.method``: ``.remote(...)`` calls it; ``.options(...)`` makes
    a copy with other call options."""

    def __init__(self, handle: ActorHandle, meta: _MethodMeta, num_returns: int | None = None,
                 tensor_transport: str | None = None, max_task_retries: int | None = None,
                 retry_exceptions: bytes | None = None) -> None:
        self._handle = handle
        self._meta = meta
        self._num_returns = meta.num_returns if num_returns is None else num_returns
        self._transport = meta.tensor_transport if tensor_transport is None else tensor_transport
        retries = meta.max_task_retries if max_task_retries is None else max_task_retries
        self._max_retries = handle._max_task_retries if retries is None else retries
        self._retry_exceptions = (meta.retry_exceptions if retry_exceptions is None
                                  else retry_exceptions)

    def options(self, *, num_returns: int | None = None, tensor_transport: str | None = None,
                max_task_retries: int | None = None,
                retry_exceptions: bool | list[type] | None = None) -> ActorMethod:
        transport = transports.normalize(tensor_transport)
        if (transport not in (None, *transports.OBJECT_STORE) and self._meta.tensor_transport is None
                and not self._handle._enable_tensor_transport):
            raise ValueError(
                f'Currently, methods with .options(tensor_transport="{tensor_transport}") are not '
                f"supported when enable_tensor_transport=False. Please set "
                f"@ferry.remote(enable_tensor_transport=True) on the actor class definition "
                f"(or decorate {self._meta.name!r} with @ferry.method(tensor_transport=...)).")
        return ActorMethod(
            self._handle, self._meta,
            None if num_returns is None else _check_num_returns(num_returns),
            transport,
            None if max_task_retries is None else _check_retries("max_task_retries",
                                                                 max_task_retries),
            None if retry_exceptions is None
            else _encode_retry_exceptions(_check_retry_exceptions(retry_exceptions)))

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """An ObjectRef of the result, or a list of ``num_returns`` refs
        when the method returns several (so typed Any: which one depends on
        the method's options, not on this call)."""
        self._meta.check_args(args, kwargs)
        data, buffers, deps, contained = serialization.dumps_args(args, kwargs)
        rt = runtime.for_handle(self._handle._session)
        out, notes = rt.submit(self._handle._actor_id, self._meta.name, data, buffers, deps,
                               contained, self._num_returns, self._transport or "",
                               self._max_retries, self._retry_exceptions)
        for note in notes:
            warnings.warn(note, UserWarning, stacklevel=2)
        return out[0] if self._num_returns == 1 else out

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"actor methods are called with .remote(): use "
                        f"handle.{self._meta.name}.remote(...)")


class ActorHandle:
    """A reference to a running actor; picklable, so it can be passed to
    other actors."""

    def __init__(self, actor_id: bytes, class_name: str, methods: dict[str, _MethodMeta],
                 session: str, max_task_retries: int = 0,
                 enable_tensor_transport: bool = False) -> None:
        self._actor_id = actor_id
        self._class_name = class_name
        self._methods = methods
        self._session = session
        self._max_task_retries = max_task_retries
        self._enable_tensor_transport = enable_tensor_transport

    def __getattr__(self, name: str) -> ActorMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        meta = self._methods.get(name)
        if meta is None:
            raise AttributeError(f"actor class {self._class_name!r} has no method {name!r}")
        method = ActorMethod(self, meta)
        self.__dict__[name] = method  # later lookups skip __getattr__
        return method

    def __repr__(self) -> str:
        return f"Actor({self._class_name}, {self._actor_id.hex()})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorHandle) and other._actor_id == self._actor_id

    def __hash__(self) -> int:
        return hash(self._actor_id)

    def __reduce__(self) -> tuple[Any, ...]:
        return ActorHandle, (self._actor_id, self._class_name, self._methods, self._session,
                             self._max_task_retries, self._enable_tensor_transport)

    def _meta_bytes(self) -> bytes:
        """What the Head keeps to rebuild this handle by name (get_actor)."""
        return cloudpickle.dumps((self._class_name, self._methods, self._max_task_retries,
                                  self._enable_tensor_transport))


def handle_from_meta(actor_id: bytes, meta: bytes, session: str) -> ActorHandle:
    """The handle ``_meta_bytes`` described, for the actor ``actor_id``."""
    class_name, methods, max_task_retries, enable_tensor_transport = cloudpickle.loads(meta)
    return ActorHandle(actor_id, class_name, methods, session, max_task_retries,
                       enable_tensor_transport)


def _rebuild_meta(name: str, signature: inspect.Signature | None, num_returns: int,
                  tensor_transport: str | None, max_task_retries: int | None,
                  retry_exceptions: bytes) -> _MethodMeta:
    meta = _MethodMeta.__new__(_MethodMeta)
    meta.name, meta.signature = name, signature
    meta.num_returns, meta.tensor_transport = num_returns, tensor_transport
    meta.max_task_retries, meta.retry_exceptions = max_task_retries, retry_exceptions
    meta._positional = _positional_range(signature)
    return meta


class ActorClass:
    """What ``@ferry.remote`` makes of a class: ``.remote(...)`` starts an
    actor process and returns its handle."""

    def __init__(self, cls: type, options: dict[str, Any]) -> None:
        self._cls = cls
        self._options = options
        self._methods = _collect_methods(cls)
        self._is_asyncio = is_asyncio_class(cls)
        self._init_sig: inspect.Signature | None
        try:
            self._init_sig = inspect.signature(cls)
        except (TypeError, ValueError):
            self._init_sig = None
        self.__name__ = cls.__name__
        self.__doc__ = cls.__doc__

    def options(self, **options: Any) -> ActorClass:
        """A copy with other creation options, Ray's names: ``name``,
        ``num_cpus``, ``num_gpus``, ``resources`` (custom resources, name ->
        amount), ``scheduling_strategy`` (None, "DEFAULT", "SPREAD" or a
        ``NodeAffinitySchedulingStrategy``), ``max_concurrency``,
        ``max_restarts`` (times the actor is re-created after its process
        dies; -1: always), ``max_task_retries`` (the methods' default) and
        ``enable_tensor_transport`` (allows ``.options(tensor_transport=...)``
        on methods not decorated with one; default: whether any method is).

        An actor with ``async def`` methods is an asyncio actor: every call
        runs on its event loop, ``max_concurrency`` (default 1000, as in Ray)
        of them at once."""
        return ActorClass(self._cls, {**self._options, **_check_actor_options(options)})

    def remote(self, *args: Any, **kwargs: Any) -> ActorHandle:
        if self._init_sig is not None:
            try:
                self._init_sig.bind(*args, **kwargs)
            except TypeError as e:
                raise TypeError(f"bad arguments for {self._cls.__name__}(): {e}") from None
        data, buffers, deps, contained = serialization.dumps_args(args, kwargs, cls=self._cls)
        opts = dict(self._options)
        if opts.get("max_concurrency") is None:
            opts["max_concurrency"] = DEFAULT_MAX_CONCURRENCY if self._is_asyncio else 1
        opts["is_asyncio"] = self._is_asyncio
        enable = opts.pop("enable_tensor_transport", None)
        if enable is None:
            enable = any(m.tensor_transport is not None for m in self._methods.values())
        rt = runtime.current()
        handle = ActorHandle(b"", self._cls.__name__, self._methods, rt.session,
                             opts.get("max_task_retries") or 0, enable)
        if opts.get("name"):
            opts["handle_meta"] = handle._meta_bytes()
        handle._actor_id = rt.create_actor(self._cls.__name__, opts, runtime.worker_command(),
                                           data, buffers, deps, contained)
        return handle

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"actor classes are instantiated with .remote(): use "
                        f"{self._cls.__name__}.remote(...)")
