"""ferry: an actor runtime that moves tensors directly between processes.

    import ferry

    @ferry.remote
    class Counter:
        def __init__(self):
            self.n = 0
        def add(self, k):
            self.n += k
            return self.n

    c = Counter.remote()
    print(ferry.get(c.add.remote(2)))
"""
from ferry import exceptions, experimental, util
from ferry._private import futures as _futures
from ferry._core import ObjectRef
from ferry.actor import ActorClass, ActorHandle, method
from ferry.remote_function import RemoteFunction
from ferry.api import (available_resources, cluster_resources, get, get_actor, get_gpu_ids,
                       init, is_initialized, kill, nodes, put, remote, shutdown, timeline, wait)

_futures.install()  # ObjectRef.future(), as_future(), await ref

__version__ = "0.1.0"

__all__ = [
    "ActorClass", "ActorHandle", "ObjectRef", "RemoteFunction", "available_resources", "cluster_resources",
    "exceptions", "experimental", "get", "get_actor", "get_gpu_ids", "init", "is_initialized", "kill", "method",
    "nodes", "put", "remote", "shutdown", "timeline", "util", "wait",
]
