"""A two-sided tensor transport over plain TCP sockets, written in Python: a
complete example of ``ferry.experimental.TwoSidedTensorTransport``.

Each member of a collective group listens on a socket and publishes its
address in the group's store; ``send`` connects to the receiving peer and
writes a header and the buffers, ``recv`` takes the connection that the
sending peer opened for that tag and reads them, then acknowledges (so both
sides fail when the sizes differ).

Wire format: header (sender rank, tag, number of buffers) as three
big-endian uint64, then each buffer's size (uint64) and bytes; the receiver
answers one byte (0: received; 1: the sizes did not match).

    import ferry as ray
    from ferry.experimental import register_tensor_transport
    from ferry.experimental.collective import create_collective_group
    register_tensor_transport("tcp2", ["cpu"], TcpTwoSidedTransport)
    create_collective_group([sender, receiver], backend="tcp2")
"""
from __future__ import annotations

import socket
import struct
import threading

from ferry.experimental import Buffer, GroupMember, TwoSidedTensorTransport
from socket_io import deadline_after, recv_exactly, recv_into, seconds_left

_HEADER = "!QQQ"  # struct formats (plain strings: the module also pickles by value)
_SIZE = "!Q"
_SIZE_BYTES = struct.calcsize(_SIZE)
_OK, _MISMATCH = b"\x00", b"\x01"


class TcpTwoSidedTransport(TwoSidedTensorTransport):

    def __init__(self, member: GroupMember) -> None:
        super().__init__(member)
        self._cv = threading.Condition()
        self._arrived: dict[tuple[int, int], socket.socket] = {}  # (peer, tag) -> its connection
        self._aborted: str | None = None
        self._listener = socket.create_server((member.hostname, 0))
        member.publish(f"rank{member.rank}",
                       f"{member.hostname}:{self._listener.getsockname()[1]}")
        self._peers = {r: member.lookup(f"rank{r}", member.timeout)
                       for r in range(member.size) if r != member.rank}
        threading.Thread(target=self._accept, name="tcp2-accept", daemon=True).start()

    def send(self, peer: int, tag: int, buffers: list[Buffer], timeout: float | None) -> None:
        deadline = deadline_after(timeout)
        host, port = self._peers[peer].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=seconds_left(deadline)) as conn:
            conn.sendall(struct.pack(_HEADER, self.rank, tag, len(buffers)))
            for b in buffers:
                conn.sendall(struct.pack(_SIZE, b.data.nbytes))
                conn.sendall(b.data)
            conn.settimeout(seconds_left(deadline))
            answer = conn.recv(1)
        if answer != _OK:
            raise ConnectionError(f"rank {peer} did not take tag {tag}: "
                                  + ("the sizes differ" if answer else "it closed the connection"))

    def recv(self, peer: int, tag: int, buffers: list[Buffer], timeout: float | None) -> None:
        deadline = deadline_after(timeout)
        with self._cv:
            while (peer, tag) not in self._arrived:
                if self._aborted is not None:
                    raise ConnectionAbortedError(self._aborted)
                if not self._cv.wait(seconds_left(deadline)):
                    raise TimeoutError(f"nothing from rank {peer} for tag {tag}")
            conn = self._arrived.pop((peer, tag))
        with conn:
            conn.settimeout(seconds_left(deadline))
            count = struct.unpack(_SIZE, _received(conn, _SIZE_BYTES))[0]
            if count != len(buffers):
                conn.sendall(_MISMATCH)
                raise ValueError(f"rank {peer} sent {count} buffers for tag {tag}, "
                                 f"expected {len(buffers)}")
            for b in buffers:
                size = struct.unpack(_SIZE, _received(conn, _SIZE_BYTES))[0]
                if size != b.data.nbytes:
                    conn.sendall(_MISMATCH)
                    raise ValueError(f"rank {peer} sent {size} bytes for tag {tag}, "
                                     f"expected {b.data.nbytes}")
                recv_into(conn, b.data, deadline)
            conn.sendall(_OK)

    def abort(self, reason: str) -> None:
        with self._cv:
            self._aborted = reason
            self._cv.notify_all()
            waiting, self._arrived = list(self._arrived.values()), {}
        for conn in waiting:
            conn.close()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept thread
        except OSError:
            pass
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
                # The header's first two fields say which transfer this is;
                # the third (the count) is read by recv.
                peer, tag = struct.unpack("!QQ", _received(conn, 16))
            except OSError:
                return  # aborted
            with self._cv:
                self._arrived[(peer, tag)] = conn
                self._cv.notify_all()



def _received(conn: socket.socket, n: int) -> bytes:
    """``n`` bytes; ConnectionError if the peer closed first."""
    data = recv_exactly(conn, n)
    if data is None:
        raise ConnectionError("the peer closed the connection")
    return data
