"""Experimental APIs of the guide: waiting for RDT tensors to be freed,
tensor-store statistics, collective groups (``ferry.experimental.collective``)
and tensor transports of your own (``register_tensor_transport``)."""
from __future__ import annotations

from typing import Any

from ferry import _core
from ferry._private import runtime
from ferry.experimental import collective  # noqa: F401  (ray.experimental.collective)
from ferry.experimental.tensor_transport import (Buffer, GroupMember, OneSidedTensorTransport,
                                                 PullItem, TensorTransport,
                                                 TwoSidedTensorTransport,
                                                 register_tensor_transport)

__all__ = ["Buffer", "GroupMember", "OneSidedTensorTransport", "PullItem", "TensorTransport",
           "TwoSidedTensorTransport", "collective", "gpu_available", "gpu_info",
           "register_tensor_transport", "tensor_store_stats", "transfer_log", "wait_tensor_freed"]


def wait_tensor_freed(tensor: Any, timeout: float | None = None) -> None:
    """Blocks until this process no longer keeps ``tensor`` for any RDT
    object: every task that takes it has finished and every ObjectRef to it
    is gone. Raises TimeoutError (GetTimeoutError) after ``timeout`` seconds."""
    if timeout is not None and timeout < 0:
        raise ValueError("timeout must be >= 0 or None")
    runtime.current().wait_tensor_freed(tensor.data_ptr(), timeout)


def gpu_available() -> bool:
    """True when this process can use a CUDA GPU: the CUDA runtime loads
    and at least one device is visible. ``gpu_info()["reason"]`` says why
    not. Needs no ``ferry.init()``."""
    return _core.gpu_support()["cuda"]


def gpu_info() -> _core.GpuSupport:
    """What this process can do with GPUs: {"cuda", "devices",
    "cuda_library", "driver_version", "runtime_version", "nccl",
    "nccl_library", "nccl_version", "reason"}. The CUDA runtime and NCCL
    are loaded at run time (FERRY_CUDART_LIBRARY, FERRY_NCCL_LIBRARY name
    other files), so one build runs with and without them."""
    return _core.gpu_support()


def tensor_store_stats() -> dict[str, int]:
    """{"num_objects", "num_tensors", "bytes"} kept by this process for RDT objects."""
    return runtime.current().tensor_store_stats()


def transfer_log() -> list[dict[str, Any]]:
    """The recent tensor transfers of this process, oldest first: dicts with
    object_id, transport (the path taken: shm, nixl, gloo, inline,
    object_store), direction (recv/send), peer, bytes, micros, pooled (the
    destination came from the warm receive pool), error (None if it
    succeeded) and reason (why this path, where there was a choice: for
    "auto", whether the producer is on this host; for a Gloo object read
    from a producer on this host (transport "shm"), that the group's two
    ranks share the host; else ""). FERRY_TRANSFER_LOG_SIZE bounds how many
    are kept."""
    return runtime.current().transfer_log()
