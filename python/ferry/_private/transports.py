"""Tensor transport and collective backend names, read from the runtime's
transport table (``ferry._core.transports()``): which names exist, which are
one-sided, which backends a collective group accepts."""
from __future__ import annotations

from typing import Any

from ferry import _core

TRANSPORTS: dict[str, _core.TransportInfo] = {}
# Every valid ``tensor_transport`` name, including those this build lacks
# (those are refused when a call is submitted, naming what this build has).
NAMES: tuple[str, ...] = ()
# "" is the default: the object store.
OBJECT_STORE: tuple[str, ...] = ("",)
ONE_SIDED: tuple[str, ...] = ()
COLLECTIVE_BACKENDS: tuple[str, ...] = ()


def refresh() -> None:
    """Reads the table again (a user registered a transport). Readers use
    ``transports.NAME`` so that they see the new lists."""
    global TRANSPORTS, NAMES, OBJECT_STORE, ONE_SIDED, COLLECTIVE_BACKENDS
    TRANSPORTS = {t["name"]: t for t in _core.transports()}
    NAMES = tuple(TRANSPORTS)
    OBJECT_STORE = ("",) + tuple(n for n, t in TRANSPORTS.items() if t["kind"] == "object_store")
    ONE_SIDED = tuple(n for n, t in TRANSPORTS.items() if t["kind"] == "one_sided")
    COLLECTIVE_BACKENDS = tuple(b for t in TRANSPORTS.values() for b in t["collective_backends"])


refresh()


def normalize(name: str | None) -> str | None:
    """Lower-cased transport name (None stays None); ValueError listing the
    valid ones."""
    if name is None:
        return None
    if not isinstance(name, str) or name.lower() not in TRANSPORTS:
        raise ValueError(f"Invalid tensor transport: {name!r}; valid tensor_transport values: "
                         f"{', '.join(NAMES)}")
    return name.lower()


def normalize_backend(backend: str) -> str:
    """Lower-cased collective backend name; ValueError listing the valid ones."""
    if not isinstance(backend, str) or backend.lower() not in COLLECTIVE_BACKENDS:
        raise ValueError(f"unknown collective backend {backend!r}; "
                         f"valid: {', '.join(COLLECTIVE_BACKENDS)}")
    return backend.lower()


# The transports registered in this process, in order: (name, factory,
# devices, two_sided). Actor creations and remote-function calls from this
# process carry them to their workers, which register them too (Ray's rule:
# register before creating the actors that use a transport, in the process
# that creates them).
Registration = tuple[str, Any, tuple[str, ...], bool]
_registered: dict[str, Registration] = {}


def register(name: str, factory: Any, devices: tuple[str, ...], two_sided: bool) -> None:
    """Registers ``factory`` (a class) as transport ``name`` here: one-sided
    (``factory()`` makes this process's instance) or two-sided (also a
    collective backend; ``factory(member)`` joins a group). Raises
    ValueError for what the table refuses."""
    entry = (name, factory, devices, two_sided)
    if _registered.get(name) == entry:
        return
    if two_sided:
        _core.register_two_sided_transport(name, list(devices), factory)
    else:
        _core.register_one_sided_transport(name, list(devices), factory)
    _registered[name] = entry
    refresh()


class Registrations:
    """The transports registered in a process, as a creation or a remote call
    carries them: unpickling it registers them in the worker, before the
    pickled class or function that follows it is imported (its decorators may
    name them)."""

    def __init__(self, items: tuple[Registration, ...]) -> None:
        self.items = items

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return install, (self.items,)


def registered() -> Registrations | None:
    """What a creation or a remote call carries to its worker: None unless a
    transport was registered here."""
    return Registrations(tuple(_registered.values())) if _registered else None


def install(registrations: tuple[Registration, ...]) -> None:
    """Registers in this worker what its creator had registered."""
    for registration in registrations:
        register(*registration)


class Deferred:
    """A remote function's top-level argument that is an object of a user's
    transport: passed as a nested ref and fetched by the function's worker
    once the call's registrations are installed there (a pooled worker may
    not have registered the transport before the call arrives)."""
    __slots__ = ("ref",)

    def __init__(self, ref: Any) -> None:
        self.ref = ref


def _is_custom_ref(value: Any) -> bool:
    if not isinstance(value, _core.ObjectRef):
        return False
    name = value.tensor_transport()
    info = TRANSPORTS.get(name.lower()) if name is not None else None
    return info is not None and info["custom"]


def defer_custom_refs(args: tuple[Any, ...], kwargs: dict[str, Any]
                      ) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``args`` and ``kwargs`` with each top-level ref of a user's transport
    wrapped in Deferred (unchanged when none is registered)."""
    if not _registered:
        return args, kwargs
    return (tuple(Deferred(a) if _is_custom_ref(a) else a for a in args),
            {k: Deferred(v) if _is_custom_ref(v) else v for k, v in kwargs.items()})
