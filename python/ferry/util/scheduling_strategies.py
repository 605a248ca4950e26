"""Where an actor runs, as Ray's ``ray.util.scheduling_strategies``.

``Cls.options(scheduling_strategy=...)`` takes ``None`` or ``"DEFAULT"``
(any node with the resources), ``"SPREAD"`` (spread actors across nodes), or
a ``NodeAffinitySchedulingStrategy``::

    from ferry.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    node_id = ferry.nodes()[0]["NodeID"]
    a = Actor.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False)).remote()
"""
from __future__ import annotations


class NodeAffinitySchedulingStrategy:
    """Run on the node ``node_id`` (hex, as ``ferry.nodes()`` lists it). When
    that node is gone or lacks the resources, a hard affinity
    (``soft=False``) fails the actor's creation; a soft one runs it
    elsewhere. Ray's class of the same name, without its private flags."""

    def __init__(self, node_id: str, soft: bool = False) -> None:
        if not isinstance(node_id, str) or not node_id:
            raise ValueError(f"node_id must be a node's hex id (a str), got {node_id!r}")
        try:
            bytes.fromhex(node_id)
        except ValueError:
            raise ValueError(f"node_id must be a node's hex id, got {node_id!r}") from None
        if not isinstance(soft, bool):
            raise ValueError(f"soft must be a bool, got {soft!r}")
        self.node_id = node_id
        self.soft = soft

    def __repr__(self) -> str:
        return f"NodeAffinitySchedulingStrategy(node_id={self.node_id!r}, soft={self.soft})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, NodeAffinitySchedulingStrategy)
                and (other.node_id, other.soft) == (self.node_id, self.soft))

    def __hash__(self) -> int:
        return hash((self.node_id, self.soft))
