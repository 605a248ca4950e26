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
# devices). Actor creations and remote-function calls from this process carry
# them to their workers, which register them too (Ray's rule: register before
# creating the actors that use a transport, in the process that creates them).
_registered: dict[str, tuple[str, Any, tuple[str, ...]]] = {}


def register(name: str, factory: Any, devices: tuple[str, ...]) -> None:
    """Registers ``factory`` (a class: ``factory()`` makes this process's
    instance) as one-sided transport ``name`` here; raises ValueError for
    what the table refuses."""
    if _registered.get(name, (None, None, None))[1:] == (factory, devices):
        return
    _core.register_one_sided_transport(name, list(devices), factory)
    _registered[name] = (name, factory, devices)
    refresh()


def registered() -> tuple[tuple[str, Any, tuple[str, ...]], ...]:
    """What a creation or a remote call carries to its worker: () unless a
    transport was registered."""
    return tuple(_registered.values())


def install(registrations: tuple[tuple[str, Any, tuple[str, ...]], ...]) -> None:
    """Registers in this worker what its creator had registered."""
    for name, factory, devices in registrations:
        register(name, factory, devices)
