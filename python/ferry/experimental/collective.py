"""Collective groups: the actors a two-sided tensor transport (Gloo, NCCL)
moves tensors between. Rendezvous goes through the Head's key-value table."""
from __future__ import annotations

import uuid
from typing import Iterable

from ferry._private import runtime, transports
from ferry.actor import ActorHandle


class CollectiveGroup:
    """A created group: ``name``, ``actors`` (rank = position), ``backend``."""

    def __init__(self, name: str, actors: Iterable[ActorHandle], backend: str) -> None:
        self.name = name
        self.actors = list(actors)
        self.backend = backend

    def __repr__(self) -> str:
        return f"CollectiveGroup(name={self.name!r}, backend={self.backend!r}, size={len(self.actors)})"


_groups: dict[str, CollectiveGroup] = {}


def create_collective_group(actors: Iterable[ActorHandle], backend: str,
                            name: str | None = None) -> CollectiveGroup:
    """Connects ``actors`` into a group for ``backend`` ("gloo", "torch_gloo"
    or "nccl"); blocks until every member joined. Returns the group. An
    unnamed group gets a name of its own (``group.name``), so several
    unnamed groups can coexist."""
    actors = list(actors)
    backend = transports.normalize_backend(backend)
    for a in actors:
        if not isinstance(a, ActorHandle):
            raise TypeError(f"create_collective_group takes actor handles, got {type(a).__name__}")
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"a collective group's name must be a non-empty str, got {name!r}")
    name = name or f"{backend}-{uuid.uuid4().hex[:16]}"
    runtime.current().create_collective_group(name, backend, [a._actor_id for a in actors])
    group = CollectiveGroup(name, actors, backend)
    _groups[name] = group
    return group


def destroy_collective_group(group_or_name: CollectiveGroup | str) -> None:
    """Destroys a group (by handle or name); its actors can join a new one."""
    name = group_or_name.name if isinstance(group_or_name, CollectiveGroup) else group_or_name
    runtime.current().destroy_collective_group(name)
    _groups.pop(name, None)


def destroy_all_collective_groups() -> None:
    """Destroys every group this process created."""
    for group in get_collective_groups():
        destroy_collective_group(group)


def get_collective_groups(actors: Iterable[ActorHandle] | None = None,
                          backend: str | None = None) -> list[CollectiveGroup]:
    """The groups this process created and has not destroyed (a group a
    failed transfer destroyed is gone too), as Ray's: with ``actors``, those
    that contain all of them; with ``backend``, those of that backend."""
    live = {name for name, _, _ in runtime.current().collective_groups()}
    groups = [g for n, g in _groups.items() if n in live]
    if backend is not None:
        wanted = transports.normalize_backend(backend)
        groups = [g for g in groups if _same_backend(g.backend, wanted)]
    if actors is not None:
        ids = {a._actor_id for a in actors}
        groups = [g for g in groups if ids <= {a._actor_id for a in g.actors}]
    return groups


def _same_backend(a: str, b: str) -> bool:
    """"gloo" and "torch_gloo" name the same backend."""
    return {a, b} <= {"gloo", "torch_gloo"} or a == b
