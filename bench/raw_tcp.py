#!/usr/bin/env python3
"""Raw TCP throughput between two processes: the baseline of
bench/cluster_transfer.py, which runs the receiver in one namespace host and
the sender in another. Without arguments it runs both on this host over
loopback and prints a table (what `make bench` runs).

Per sample the sender writes an 8-byte length and then the payload with one
``sendall`` of a preallocated buffer; the receiver reads the payload with
``recv_into`` into one buffer it allocated and touched once (warm, reused for
every sample) and answers with the payload's last byte; the sender times from
its first write to that answer. Each size runs warm-up samples first. Every
sample's answer must equal the fill byte of that size (fresh per size), so a
short read cannot pass. A length of 0 ends the receiver.

    python bench/raw_tcp.py                 # loopback: 1, 16 and 256 MiB, a table
    python bench/raw_tcp.py recv --bind 10.213.0.12 --port 7100 --max-bytes 268435456
    python bench/raw_tcp.py send --connect 10.213.0.12 --port 7100 \\
        --sizes 1048576,16777216 --warmup 3,1 --reps 20,5   # prints JSON: {size: [seconds, ...]}
"""
import argparse
import json
import socket
import statistics
import struct
import subprocess
import sys
import time

HEADER = struct.Struct("!Q")
CONNECT_DEADLINE_S = 30.0
IO_TIMEOUT_S = 120.0


def _recv_exact(sock, view):
    got = 0
    while got < len(view):
        n = sock.recv_into(view[got:])
        if n == 0:
            raise ConnectionError(f"peer closed after {got} of {len(view)} bytes")
        got += n


def receive(bind, port, max_bytes):
    """Serves one sender until it sends length 0; returns the samples served."""
    buf = bytearray(max_bytes)
    buf[::4096] = b"\1" * len(buf[::4096])  # touch every page once: the buffer is warm
    view = memoryview(buf)
    header = bytearray(HEADER.size)
    with socket.create_server((bind, port), reuse_port=False) as server:
        server.settimeout(CONNECT_DEADLINE_S)
        print(json.dumps({"listening": f"{bind}:{server.getsockname()[1]}"}), flush=True)
        conn, _ = server.accept()
    served = 0
    with conn:
        conn.settimeout(IO_TIMEOUT_S)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            _recv_exact(conn, memoryview(header))
            (n,) = HEADER.unpack(header)
            if n == 0:
                return served
            if n > max_bytes:
                raise ValueError(f"sender asked for {n} bytes, buffer holds {max_bytes}")
            _recv_exact(conn, view[:n])
            conn.sendall(bytes(view[n - 1:n]))
            served += 1


def _connect(host, port):
    deadline = time.monotonic() + CONNECT_DEADLINE_S
    while True:
        try:
            return socket.create_connection((host, port), timeout=IO_TIMEOUT_S)
        except (ConnectionRefusedError, OSError):
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)  # polling for the receiver to listen, with a deadline


def send(host, port, sizes, warmup, reps):
    """{size: [seconds per transfer]} for each size, after warm-up transfers;
    warmup and reps are lists, one entry per size."""
    out = {}
    with _connect(host, port) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ack = bytearray(1)
        for i, n in enumerate(sizes):
            fill = (i * 37 + 11) % 255 + 1
            payload = bytearray([fill]) * n
            samples = []
            for rep in range(warmup[i] + reps[i]):
                t0 = time.perf_counter()
                sock.sendall(HEADER.pack(n))
                sock.sendall(payload)
                _recv_exact(sock, memoryview(ack))
                dt = time.perf_counter() - t0
                if ack[0] != fill:
                    raise AssertionError(f"receiver's last byte {ack[0]} != fill {fill} at {n} bytes")
                if rep >= warmup[i]:
                    samples.append(dt)
            out[n] = samples
        sock.sendall(HEADER.pack(0))
    return out


def loopback():
    """Receiver in a child process, sender here, over 127.0.0.1; prints a table."""
    sizes, warmup, reps = [1 << 20, 16 << 20, 256 << 20], [10, 3, 1], [50, 15, 5]
    receiver = subprocess.Popen([sys.executable, __file__, "recv", "--bind", "127.0.0.1",
                                 "--port", "0", "--max-bytes", str(max(sizes))],
                                stdout=subprocess.PIPE, text=True)
    try:
        port = int(json.loads(receiver.stdout.readline())["listening"].rsplit(":", 1)[1])
        samples = send("127.0.0.1", port, sizes, warmup, reps)
        receiver.wait(timeout=30)
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait(10)
    print("raw TCP over loopback (sendall / recv_into a warm buffer / 1-byte answer)")
    print(f"{'size':>8}  {'median s':>10} {'GB/s':>7}")
    for n in sizes:
        med = statistics.median(samples[n])
        print(f"{n >> 20:>4} MiB  {med:>10.5f} {n / med / 1e9:>7.2f}")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="role")
    r = sub.add_parser("recv")
    r.add_argument("--bind", required=True)
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--max-bytes", type=int, required=True)
    s = sub.add_parser("send")
    s.add_argument("--connect", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--sizes", required=True, help="comma-separated byte counts")
    s.add_argument("--warmup", default="2", help="comma-separated, one per size (or one for all)")
    s.add_argument("--reps", default="10", help="comma-separated, one per size (or one for all)")
    args = parser.parse_args(argv)
    if args.role is None:
        return loopback()
    if args.role == "recv":
        served = receive(args.bind, args.port, args.max_bytes)
        print(json.dumps({"served": served}), flush=True)
    else:
        sizes = [int(x) for x in args.sizes.split(",")]
        per_size = []
        for text in (args.warmup, args.reps):
            values = [int(x) for x in text.split(",")]
            if len(values) == 1:
                values *= len(sizes)
            if len(values) != len(sizes):
                parser.error(f"{text!r}: want one value or one per size ({len(sizes)})")
            per_size.append(values)
        samples = send(args.connect, args.port, sizes, *per_size)
        print(json.dumps({str(k): v for k, v in samples.items()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
