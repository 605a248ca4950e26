"""Blocking socket reads with a deadline, shared by the TCP transports of
this directory."""
from __future__ import annotations

import socket
import time


def deadline_after(timeout: float | None) -> float | None:
    """The monotonic time ``timeout`` seconds from now (None: no limit)."""
    return None if timeout is None else time.monotonic() + timeout


def seconds_left(deadline: float | None) -> float | None:
    """Seconds until ``deadline`` (None: no limit); TimeoutError once past."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the transfer's timeout passed")
    return left


def recv_exactly(conn: socket.socket, n: int) -> bytes | None:
    """``n`` bytes, or None if the peer closed before the first one;
    ConnectionError if it closed after."""
    chunks, got = [], 0
    while got < n:
        chunk = conn.recv(n - got)
        if not chunk:
            if got == 0:
                return None
            raise ConnectionError(f"the peer closed the connection after {got} of {n} bytes")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv_into(conn: socket.socket, data: memoryview, deadline: float | None) -> None:
    """Fills ``data`` from ``conn`` by ``deadline``."""
    view, got, nbytes = data.cast("B"), 0, data.nbytes
    while got < nbytes:
        conn.settimeout(seconds_left(deadline))
        n = conn.recv_into(view[got:], nbytes - got)
        if n == 0:
            raise ConnectionError(f"the peer closed the connection after {got} of {nbytes} bytes")
        got += n
