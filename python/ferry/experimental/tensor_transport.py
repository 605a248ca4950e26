"""Tensor transports written in Python: subclass
:class:`OneSidedTensorTransport` or :class:`TwoSidedTensorTransport`,
register it with :func:`register_tensor_transport`, then use its name as
``tensor_transport=`` like a built-in transport.

**One-sided** (like ``nixl`` and ``shm``): when an actor's method returns
tensors with it, ferry calls the producer's ``export`` with the tensors'
memory and sends what it returns (an endpoint string naming the producer,
one descriptor string per buffer) with the object's metadata; a consumer's
``pull`` receives those strings and the memory to fill. ``release`` runs in
the producer when the object is freed. No collective group.

**Two-sided** (like ``gloo``): the actors form a collective group whose
backend is the transport's name
(``create_collective_group(actors, backend="name")``); each member's
instance is made with a :class:`GroupMember` (rank, size, and the group's
store to publish an address and look up the peers'), and a transfer is the
producer's ``send`` matched by the consumer's ``recv`` under the same tag.
ferry posts them in an order that cannot deadlock, each on a thread of its
own; ``abort`` must make pending ones return.

Every other part of a transfer is ferry's: which tensors move, allocating
the destination, ownership and freeing, errors, the transfer log.

Errors: what ``pull``, ``send`` or ``recv`` raises fails the transfer, as a
built-in transport's failure does: the consumer's task or ``get`` raises
:class:`ferry.exceptions.TransportError` naming the transport and the
exception (``TimeoutError`` becomes ``GetTimeoutError``). A one-sided
object stays valid and may be pulled again; a failed two-sided transfer
destroys the group, as with gloo. What ``export`` raises fails the producing
call with ``TransportError``.

Threads: ferry calls an instance from several threads, with the GIL held for
each call; the calls block until done or until ``timeout`` seconds (None: no
limit) have passed. Keep sockets and locks inside the instance.

examples/custom_transport/ has a complete transport of each kind over plain
TCP sockets.
"""
from __future__ import annotations

import abc
from typing import Any, Callable, NamedTuple

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


class GroupMember(NamedTuple):
    """What a two-sided transport's constructor gets: this member's rank and
    the group's size, the address to listen on (the node's IP in a cluster,
    else loopback), the bound on one transfer, and the group's key-value
    store: ``publish(key, value)`` and ``lookup(key, timeout) -> value``
    (waits for a peer's key; ``GetTimeoutError`` after ``timeout`` seconds).
    Keys are private to the group; the store works only in ``__init__``."""
    rank: int
    size: int
    hostname: str
    timeout: float
    publish: Callable[[str, str], None]
    lookup: Callable[[str, float | None], str]


class TensorTransport(abc.ABC):  # noqa: B024 (the common root of the two kinds)
    """The root of :class:`OneSidedTensorTransport` and
    :class:`TwoSidedTensorTransport`."""


class OneSidedTensorTransport(TensorTransport):
    """A one-sided tensor transport (the Python face of the core's
    ``OneSidedTransport``): the producer exports, the consumer pulls. ferry
    makes one instance per process, with no arguments, on first use."""

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


class TwoSidedTensorTransport(TensorTransport):
    """A two-sided tensor transport (the Python face of the core's
    ``TwoSidedTransport``): one instance per member of each collective group
    of this backend, made when the group is created (``__init__`` joins it:
    publish this member's address, look up the peers')."""

    def __init__(self, member: GroupMember) -> None:
        self.rank = member.rank
        self.size = member.size

    @abc.abstractmethod
    def send(self, peer: int, tag: int, buffers: list[Buffer], timeout: float | None) -> None:
        """Sends ``buffers`` (read-only), in order, to rank ``peer`` under
        ``tag`` (unique per transfer between a pair); returns when they are
        sent."""

    @abc.abstractmethod
    def recv(self, peer: int, tag: int, buffers: list[Buffer], timeout: float | None) -> None:
        """Receives into ``buffers`` (writable) what rank ``peer`` sends under
        ``tag``; the sizes match the sender's."""

    def abort(self, reason: str) -> None:  # noqa: B027 (optional)
        """The group is being destroyed (or a transfer failed): make pending
        ``send``/``recv`` calls raise soon. Default: nothing."""


def register_tensor_transport(transport_name: str, devices: Any, transport_class: Any) -> None:
    """Registers ``transport_class`` (a :class:`OneSidedTensorTransport` or
    :class:`TwoSidedTensorTransport` subclass) as ``transport_name`` for
    tensors of ``devices`` (device types such as ``["cpu"]``); a two-sided
    one is also the collective backend of that name.

    Call it before creating the actors that use the transport, in the
    process that creates them (Ray's rule): those actors, the remote
    functions this process calls and the actors they create register it
    too. Both argument orders are accepted: Ray's
    ``(transport_name, devices, transport_class)`` and
    ``(transport_name, transport_class, devices)``.
    """
    if isinstance(devices, type) and not isinstance(transport_class, type):
        devices, transport_class = transport_class, devices
    if not (isinstance(transport_class, type)
            and issubclass(transport_class, (OneSidedTensorTransport, TwoSidedTensorTransport))):
        raise ValueError(
            f"transport_class must be a subclass of ferry.experimental.OneSidedTensorTransport "
            f"or TwoSidedTensorTransport, got {transport_class!r} (Ray's "
            "TensorTransportManager interface is not supported)")
    if isinstance(devices, str) or not all(isinstance(d, str) for d in devices or ()):
        raise ValueError(f"devices must be a list of device types such as ['cpu'], got "
                         f"{devices!r}")
    if not isinstance(transport_name, str):
        raise ValueError(f"transport_name must be a str, got {transport_name!r}")
    transports.register(transport_name.lower(), transport_class, tuple(devices),
                        issubclass(transport_class, TwoSidedTensorTransport))
