"""Tensor transports for the custom-transport tests: the TCP example's
transport, and variants that fail in each way a transport can. Workers
import this module (classes pickle by reference)."""
import os
import socket
import struct
import sys
import threading

import torch

import ferry



def _example_dir():
    """examples/custom_transport of the checkout these tests run from (they
    may run from a copy inside a build directory: the sanitizer runs)."""
    here = os.path.dirname(os.path.abspath(__file__))
    while True:
        candidate = os.path.join(here, "examples", "custom_transport")
        if os.path.isdir(candidate):
            return candidate
        parent = os.path.dirname(here)
        if parent == here:
            raise RuntimeError("examples/custom_transport not found above " + __file__)
        here = parent


EXAMPLE_DIR = _example_dir()
if EXAMPLE_DIR not in sys.path:
    sys.path.insert(0, EXAMPLE_DIR)

import socket_io  # noqa: E402
import tcp_transport  # noqa: E402
import tcp_two_sided  # noqa: E402
from tcp_transport import TcpTransport  # noqa: E402
from tcp_two_sided import TcpTwoSidedTransport  # noqa: E402

# Every instance this process made, for the tests to look inside.
INSTANCES = []


class TrackedTcp(TcpTransport):
    def __init__(self):
        super().__init__()
        INSTANCES.append(self)


def exported_buffers():
    """How many buffers this process's transports export now."""
    return sum(len(t._exports) for t in INSTANCES)


def listening():
    """Whether any of this process's transports has a listening socket open."""
    return any(t._listener is not None for t in INSTANCES)


class FailsMidPull(TrackedTcp):
    """Its first pull in a process reads half of the first buffer and then
    raises, as a connection dropping mid-transfer would; later pulls work."""
    failed = False

    def pull(self, items, timeout):
        if FailsMidPull.failed:
            return super().pull(items, timeout)
        FailsMidPull.failed = True
        item = items[0]
        host, port = item.endpoint.rsplit(":", 1)
        buffer_id, nbytes = (int(x) for x in item.descriptor.split(":"))
        with socket.create_connection((host, int(port)), timeout=timeout) as conn:
            conn.sendall(struct.pack(tcp_transport._REQUEST, buffer_id, nbytes))
            assert socket_io.recv_exactly(conn, 1) == tcp_transport._OK
            half = nbytes // 2
            item.dst.data.cast("B")[:half] = socket_io.recv_exactly(conn, half)
        raise ConnectionResetError(f"the link dropped after {half} of {nbytes} bytes")


class NeverArrives(TrackedTcp):
    """A pull that waits out its timeout, as a transport whose peer went
    silent."""

    def pull(self, items, timeout):
        threading.Event().wait(timeout if timeout is not None else 3600)
        raise TimeoutError(f"nothing arrived within {timeout:.1f} s")


class DropsADescriptor(TrackedTcp):
    """Exports every buffer but returns one descriptor too few."""

    def export(self, buffers):
        endpoint, descriptors = super().export(buffers)
        return endpoint, descriptors[:-1]


class ExportFails(TrackedTcp):
    def export(self, buffers):
        raise RuntimeError("no route to the fabric")


class BreaksFirstSend(TcpTwoSidedTransport):
    """Two-sided: its first send in a process writes half of the first
    buffer and then raises, as a link dropping mid-transfer would."""
    broke = False

    def send(self, peer, tag, buffers, timeout):
        if BreaksFirstSend.broke:
            return super().send(peer, tag, buffers, timeout)
        BreaksFirstSend.broke = True
        host, port = self._peers[peer].rsplit(":", 1)
        nbytes = buffers[0].data.nbytes
        with socket.create_connection((host, int(port)), timeout=timeout) as conn:
            conn.sendall(struct.pack(tcp_two_sided._HEADER, self.rank, tag, len(buffers)))
            conn.sendall(struct.pack(tcp_two_sided._SIZE, nbytes))
            conn.sendall(buffers[0].data[:nbytes // 2])
        raise ConnectionResetError(f"the link dropped after {nbytes // 2} of {nbytes} bytes")


class JoinFails(TcpTwoSidedTransport):
    def __init__(self, member):
        raise RuntimeError(f"rank {member.rank} found no fabric")


@ferry.remote
class Node:
    def __init__(self):
        self.kept = None

    def make(self, n, value):
        return torch.full((n,), float(value))

    def total(self, tensor):
        return float(tensor.sum())

    def totals(self, tensors):
        return [float(t.sum()) for t in ferry.get(tensors)]  # nested refs: fetched here

    def exported_buffers(self):
        return exported_buffers()

    def transfer_log(self):
        return ferry.experimental.transfer_log()

    def stats(self):
        return ferry.experimental.tensor_store_stats()


@ferry.remote
def total(tensor):
    return float(tensor.sum())
