"""Collective groups: the actors a two-sided tensor transport (Gloo, NCCL)
moves tensors between. Rendezvous goes through the Head's key-value table."""
from ferry._private import runtime
from ferry.actor import ActorHandle

BACKENDS = ("gloo", "torch_gloo", "nccl")


class CollectiveGroup:
    """A created group: ``name``, ``actors`` (rank = position), ``backend``."""

    def __init__(self, name, actors, backend):
        self.name = name
        self.actors = list(actors)
        self.backend = backend

    def __repr__(self):
        return f"CollectiveGroup(name={self.name!r}, backend={self.backend!r}, size={len(self.actors)})"


_groups = {}


def create_collective_group(actors, backend, name=None):
    """Connects ``actors`` into a group for ``backend`` ("gloo", "torch_gloo"
    or "nccl"); blocks until every member joined. Returns the group."""
    actors = list(actors)
    if not isinstance(backend, str) or backend.lower() not in BACKENDS:
        raise ValueError(f"unknown collective backend {backend!r}; valid: {', '.join(BACKENDS)}")
    for a in actors:
        if not isinstance(a, ActorHandle):
            raise TypeError(f"create_collective_group takes actor handles, got {type(a).__name__}")
    name = name or "default"
    backend = backend.lower()
    runtime.current().create_collective_group(name, backend, [a._actor_id for a in actors])
    group = CollectiveGroup(name, actors, backend)
    _groups[name] = group
    return group


def destroy_collective_group(group_or_name):
    """Destroys a group (by handle or name); its actors can join a new one."""
    name = group_or_name.name if isinstance(group_or_name, CollectiveGroup) else group_or_name
    runtime.current().destroy_collective_group(name)
    _groups.pop(name, None)


def get_collective_groups():
    """The groups this process created and has not destroyed."""
    live = {name for name, _, _ in runtime.current().collective_groups()}
    return [g for n, g in _groups.items() if n in live]
