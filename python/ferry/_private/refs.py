"""Rebuilding ObjectRefs that travelled inside serialized values."""
from ferry._private import runtime


def rebuild_ref(object_id, owner_address, owner_id):
    return runtime.current().make_ref(object_id, owner_address, owner_id)
