"""Collective groups: the actors a two-sided tensor transport (Gloo, NCCL)
moves tensors between. Rendezvous goes through the Head's key-value table."""
from __future__ import annotations

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
    or "nccl"); blocks until every member joined. Returns the group."""
    actors = list(actors)
    backend = transports.normalize_backend(backend)
    for a in actors:
        if not isinstance(a, ActorHandle):
            raise TypeError(f"create_collective_group takes actor handles, got {type(a).__name__}")
    name = name or "default"
    runtime.current().create_collective_group(name, backend, [a._actor_id for a in actors])
    group = CollectiveGroup(name, actors, backend)
    _groups[name] = group
    return group


def destroy_collective_group(group_or_name: CollectiveGroup | str) -> None:
    """Destroys a group (by handle or name); its actors can join a new one."""
    name = group_or_name.name if isinstance(group_or_name, CollectiveGroup) else group_or_name
    runtime.current().destroy_collective_group(name)
    _groups.pop(name, None)


def get_collective_groups() -> list[CollectiveGroup]:
    """The groups this process created and has not destroyed."""
    live = {name for name, _, _ in runtime.current().collective_groups()}
    return [g for n, g in _groups.items() if n in live]
