"""ObjectRefs that travelled inside serialized values: rebuilding them and
registering this process as a borrower with their owners.

Unpickling a ref this process does not own yet makes it a borrower. The
owner must know before the value the ref came in is freed (that value's
producer holds the ref until then), so every ferry ``loads`` calls
``register_borrowed`` before handing the value to user code: one request per
owner, waited for. A ``get`` of several values, and a task's arguments,
register once for all their refs (``registering_once``)."""
import contextlib
import threading

from ferry._private import runtime

_local = threading.local()


def rebuild_ref(object_id, owner_address, owner_id, tensor_transport=""):
    ref, must_register = runtime.current().make_ref(object_id, owner_address, owner_id,
                                                    tensor_transport)
    if must_register:
        pending = getattr(_local, "pending", None)
        if pending is None:
            pending = _local.pending = []
        pending.append(ref)
    return ref


def register_borrowed():
    """Registers the refs this thread unpickled since the last call with
    their owners; returns once every owner has them. Inside
    ``registering_once`` it waits for the block's end."""
    if getattr(_local, "deferred", 0):
        return
    pending = getattr(_local, "pending", None)
    if pending:
        _local.pending = []
        runtime.current().register_borrows(pending)


@contextlib.contextmanager
def registering_once():
    """Registers the refs unpickled in the block at its end, with one request
    per owner, instead of one per value: the values must not reach user
    code before the block ends."""
    depth = getattr(_local, "deferred", 0)
    _local.deferred = depth + 1
    try:
        yield
    finally:
        _local.deferred = depth
        if depth == 0:
            register_borrowed()
