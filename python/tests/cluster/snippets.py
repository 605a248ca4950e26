"""Source text shared by the cluster tests' driver scripts.

``driver(body)`` is ``PRELUDE`` plus ``body`` (each dedented): the prelude
defines, at the top of the driver's ``__main__``, what actor classes there
use. Actor classes travel by value (cloudpickle), these functions with them,
so workers import nothing of the tests. An actor reports where it runs with
``where = where_method`` in its class body.
"""
import textwrap

PRELUDE = '''
import hashlib
import os
import socket

import numpy as np

MiB = 1 << 20


def where_method(self):
    """Where this actor's process runs: its node id, hostname and pid."""
    return {"node_id": os.environ.get("FERRY_NODE_ID"), "hostname": socket.gethostname(),
            "pid": os.getpid()}


def make_value(seed, nbytes=64 * MiB):
    """nbytes of seeded random bytes: any process can rebuild them."""
    return np.random.default_rng(seed).integers(0, 256, nbytes, dtype=np.uint8)


def digest(arr):
    return hashlib.sha256(memoryview(np.ascontiguousarray(arr)).cast("B")).hexdigest()
'''


def driver(body: str) -> str:
    return textwrap.dedent(PRELUDE) + "\n" + textwrap.dedent(body)
