"""A tensor transport over plain TCP sockets, written in Python: a complete
example of ``ferry.experimental.OneSidedTensorTransport``.

The producer serves the buffers it exported from a listening socket (one
thread per connection), open only while it exports something; a consumer's
``pull`` connects to each producer it needs and asks for its buffers by id. Endpoint: ``"host:port"``;
descriptor: ``"id:nbytes"``.

Protocol, per buffer: the consumer sends (id, nbytes) as two big-endian
uint64; the producer answers one status byte (0: the bytes follow; 1: not
exported or another size) and then the bytes.

    import ferry as ray
    from ferry.experimental import register_tensor_transport
    register_tensor_transport("tcp", ["cpu"], TcpTransport)
    ...
    @ray.method(tensor_transport="tcp")
    def produce(self): ...
"""
from __future__ import annotations

import collections
import os
import socket
import struct
import threading

from ferry.experimental import Buffer, OneSidedTensorTransport, PullItem
from socket_io import deadline_after, recv_exactly, recv_into, seconds_left

_REQUEST = "!QQ"  # struct formats (plain strings: the module also pickles by value)
_REQUEST_SIZE = struct.calcsize(_REQUEST)
_OK, _MISSING = b"\x00", b"\x01"


class TcpTransport(OneSidedTensorTransport):

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._exports: dict[int, memoryview] = {}  # id -> the exported bytes
        self._ids: dict[tuple[int, int], collections.deque[int]] = collections.defaultdict(
            collections.deque)  # (address, nbytes) -> ids, oldest first
        self._sending: collections.Counter[int] = collections.Counter()  # id -> sends running
        self._next_id = 0
        self._listener: socket.socket | None = None
        self._endpoint = ""

    # --- producer ---------------------------------------------------------

    def export(self, buffers: list[Buffer]) -> tuple[str, list[str]]:
        descriptors = []
        with self._lock:
            self._listen()
            for b in buffers:
                self._next_id += 1
                self._exports[self._next_id] = b.data
                self._ids[(b.address, b.data.nbytes)].append(self._next_id)
                descriptors.append(f"{self._next_id}:{b.data.nbytes}")
        return self._endpoint, descriptors

    def release(self, buffers: list[Buffer]) -> None:
        with self._lock:
            for b in buffers:
                ids = self._ids.get((b.address, b.data.nbytes))
                if not ids:
                    continue
                buffer_id = ids.popleft()
                if not ids:
                    del self._ids[(b.address, b.data.nbytes)]
                del self._exports[buffer_id]
                # The memory is freed once this returns: wait for its sends.
                self._lock.wait_for(lambda: self._sending[buffer_id] == 0)
                del self._sending[buffer_id]
            if not self._exports:
                self._stop_listening()

    def _listen(self) -> None:
        """Opens the listening socket if it is closed. Holds ``_lock``."""
        if self._listener is not None:
            return
        host = os.environ.get("FERRY_NODE_IP", "127.0.0.1")
        self._listener = socket.create_server((host, 0))
        self._endpoint = f"{host}:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, args=(self._listener,),
                         name="tcp-transport-accept", daemon=True).start()

    def _stop_listening(self) -> None:
        """Closes the listening socket: nothing is left to serve. Connections
        already accepted finish on their own threads. Holds ``_lock``."""
        if self._listener is None:
            return
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self._listener.close()
        self._listener = None

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed: nothing exported any more
            threading.Thread(target=self._serve, args=(conn,), name="tcp-transport-serve",
                             daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            while True:
                header = recv_exactly(conn, _REQUEST_SIZE)
                if header is None:
                    return  # the consumer is done
                buffer_id, nbytes = struct.unpack(_REQUEST, header)
                with self._lock:
                    data = self._exports.get(buffer_id)
                    if data is not None and data.nbytes == nbytes:
                        self._sending[buffer_id] += 1
                    else:
                        data = None
                if data is None:
                    conn.sendall(_MISSING)
                    continue
                try:
                    conn.sendall(_OK)
                    conn.sendall(data)
                except OSError:
                    return
                finally:
                    with self._lock:
                        self._sending[buffer_id] -= 1
                        self._lock.notify_all()

    # --- consumer ---------------------------------------------------------

    def pull(self, items: list[PullItem], timeout: float | None) -> None:
        deadline = deadline_after(timeout)
        by_producer: dict[str, list[PullItem]] = collections.defaultdict(list)
        for item in items:
            by_producer[item.endpoint].append(item)
        for endpoint, mine in by_producer.items():
            host, port = endpoint.rsplit(":", 1)
            address = (host, int(port))
            with socket.create_connection(address, timeout=seconds_left(deadline)) as conn:
                for item in mine:
                    self._pull_one(conn, item, deadline)

    @staticmethod
    def _pull_one(conn: socket.socket, item: PullItem, deadline: float | None) -> None:
        buffer_id, nbytes = (int(x) for x in item.descriptor.split(":"))
        if nbytes != item.dst.data.nbytes:
            raise ValueError(f"descriptor {item.descriptor!r} is for {nbytes} bytes, the "
                             f"destination has {item.dst.data.nbytes}")
        conn.settimeout(seconds_left(deadline))
        conn.sendall(struct.pack(_REQUEST, buffer_id, nbytes))
        if recv_exactly(conn, 1) != _OK:
            raise ConnectionError(f"the producer at {item.endpoint} no longer exports buffer "
                                  f"{buffer_id}")
        recv_into(conn, item.dst.data, deadline)
