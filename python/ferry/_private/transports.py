"""Tensor transport and collective backend names, read from the runtime's
transport table (``ferry._core.transports()``): which names exist, which are
one-sided, which backends a collective group accepts."""
from __future__ import annotations

from ferry import _core

TRANSPORTS: dict[str, _core.TransportInfo] = {t["name"]: t for t in _core.transports()}
# Every valid ``tensor_transport`` name, including those this build lacks
# (those are refused when a call is submitted, naming what this build has).
NAMES: tuple[str, ...] = tuple(TRANSPORTS)
# "" is the default: the object store.
OBJECT_STORE: tuple[str, ...] = ("",) + tuple(
    n for n, t in TRANSPORTS.items() if t["kind"] == "object_store")
ONE_SIDED: tuple[str, ...] = tuple(n for n, t in TRANSPORTS.items() if t["kind"] == "one_sided")
COLLECTIVE_BACKENDS: tuple[str, ...] = tuple(
    b for t in TRANSPORTS.values() for b in t["collective_backends"])


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
