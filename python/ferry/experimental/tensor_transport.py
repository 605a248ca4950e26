"""Tensor transports written in Python: subclass :class:`TensorTransport`,
register it with :func:`register_tensor_transport`, then use its name as
``tensor_transport=`` like a built-in transport.

A registered transport is one-sided, like ``nixl`` and ``shm``: when an
actor's method returns tensors with it, ferry calls the producer's
``export`` with the tensors' memory and sends what it returns (an endpoint
string naming the producer, one descriptor string per buffer) with the
object's metadata; a consumer's ``pull`` receives those strings and the
memory to fill. ``release`` runs in the producer when the object is freed.
Every other part of a transfer is ferry's: which tensors move, allocating
the destination, ownership and freeing, errors, the transfer log.

Errors: what ``pull`` raises fails the transfer, as a built-in transport's
failure does: the consumer's task or ``get`` raises
:class:`ferry.exceptions.TransportError` naming the transport and the
exception (``TimeoutError`` becomes ``GetTimeoutError``); the object stays
valid and may be pulled again. What ``export`` raises fails the producing
call with ``TransportError``.

Threads: ferry calls one instance per process (made with ``cls()`` on first
use) from several threads, with the GIL held for each call; ``pull`` blocks
its thread until done or until ``timeout`` seconds (None: no limit) have
passed. Keep sockets and locks inside the instance; release the GIL in
long blocking calls (socket calls do).

examples/custom_transport/tcp_transport.py is a complete transport over a
plain TCP socket.
"""
from __future__ import annotations

import abc
from typing import Any, NamedTuple

from ferry._private import transports


class Buffer(NamedTuple):
    """A tensor's memory: its address (stable while the object lives, so a
    key for ``release``) and a memoryview of its bytes (read-only in
    ``export``, writable in ``pull``)."""
    address: int
    data: memoryview


class PullItem(NamedTuple):
    """One buffer to pull: what the producer's ``export`` returned for it,
    and where to write its bytes (``dst.data`` has the exported length)."""
    endpoint: str
    descriptor: str
    dst: Buffer


class TensorTransport(abc.ABC):
    """A one-sided tensor transport (the Python face of the core's
    ``OneSidedTransport``): the producer exports, the consumer pulls."""

    @abc.abstractmethod
    def export(self, buffers: list[Buffer]) -> tuple[str, list[str]]:
        """Makes ``buffers`` readable by other processes until ``release``;
        returns ``(endpoint, descriptors)``, one descriptor per buffer. The
        memory stays valid and unchanged until ``release``."""

    def release(self, buffers: list[Buffer]) -> None:  # noqa: B027 (optional)
        """Undoes one ``export`` of the same buffers (the object was freed);
        the memory is valid until this returns. Default: nothing."""

    @abc.abstractmethod
    def pull(self, items: list[PullItem], timeout: float | None) -> None:
        """Copies each item's remote buffer into ``item.dst.data``; items may
        name different producers. Raise ``TimeoutError`` after ``timeout``
        seconds; raise any exception for a failed transfer."""


def register_tensor_transport(transport_name: str, devices: Any, transport_class: Any) -> None:
    """Registers ``transport_class`` (a :class:`TensorTransport` subclass) as
    ``transport_name`` for tensors of ``devices`` (device types such as
    ``["cpu"]``).

    Call it before creating the actors that use the transport, in the
    process that creates them (Ray's rule): those actors, the remote
    functions this process calls and the actors they create register it
    too. Both argument orders are accepted: Ray's
    ``(transport_name, devices, transport_class)`` and
    ``(transport_name, transport_class, devices)``.
    """
    if isinstance(devices, type) and not isinstance(transport_class, type):
        devices, transport_class = transport_class, devices
    if not isinstance(transport_class, type) or not issubclass(transport_class, TensorTransport):
        raise ValueError(
            f"transport_class must be a subclass of ferry.experimental.TensorTransport, got "
            f"{transport_class!r} (Ray's TensorTransportManager interface is not supported: "
            "implement export, release and pull)")
    if isinstance(devices, str) or not all(isinstance(d, str) for d in devices or ()):
        raise ValueError(f"devices must be a list of device types such as ['cpu'], got "
                         f"{devices!r}")
    if not isinstance(transport_name, str):
        raise ValueError(f"transport_name must be a str, got {transport_name!r}")
    transports.register(transport_name.lower(), transport_class, tuple(devices))
