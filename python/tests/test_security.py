"""Authentication of control connections and where ferry listens (the
threat model is docs/security.md).

Every ferry process (the driver, which also hosts the Head, and each actor
worker) listens on a Linux abstract Unix socket, `unix:@ferry-<session>-<id>`.
These tests open raw sockets to those listeners the way a hostile local
process could, and check that

* a connection that does not present the cluster token in a well-formed
  first HELLO frame is closed by the server, promptly (or, when it sends
  nothing, at the handshake timeout), with an error reply where the frame
  could be read;
* a connection that presents the right token is answered (a positive control
  for the hand-made frames below: the rejections are about the token, not
  about a bad encoding);
* the runtime is undisturbed afterwards: existing actors answer, a new actor
  starts (its own connections still authenticate), RDT transfers work;
* nothing is on disk (abstract sockets only) and no ferry process has a TCP
  listener outside loopback (the driver none at all).

The frame format (src/ferry/rpc/frame.h): a 16-byte little-endian header
{u32 payload_size, u16 method, u8 kind, u8 flags, u64 request_id} and a
serialized protobuf. There are no Python bindings for ferry.proto, so the
`Hello` message is encoded by hand below.
"""
import os
import random
import socket
import struct
import time

import pytest

from conftest import GET_TIMEOUT

pytestmark = pytest.mark.usefixtures("ferry_module_session")

HELLO, PUSH_TASK, GET_ACTOR_INFO, KILL_ACTOR = 1, 2, 8, 9  # proto::Method
REQUEST, REPLY, ERROR_REPLY, ONE_WAY = 0, 1, 2, 3  # rpc::FrameKind
HEADER = struct.Struct("<IHBBQ")
# A rejected connection is closed right after its first frame; this bound only
# has to be well below the handshake timeout (so that a close *by timeout*
# does not pass for a rejection) and generous for a loaded machine.
REJECT_DEADLINE = 5.0
# A connection that sends nothing is closed at the handshake timeout
# (FERRY_RPC_CONNECT_TIMEOUT_S, 10 s by default).
HANDSHAKE_TIMEOUT = float(os.environ.get("FERRY_RPC_CONNECT_TIMEOUT_S", "10"))
SILENT_DEADLINE = HANDSHAKE_TIMEOUT + 10.0


# --- protobuf and frame encoding -------------------------------------------

def _varint(n):
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _pb_bytes(field, value):
    return _varint(field << 3 | 2) + _varint(len(value)) + value


def _pb_int(field, value):
    return _varint(field << 3 | 0) + _varint(value & 0xFFFFFFFFFFFFFFFF)


def hello_payload(token, worker_id=b"\x11" * 16, address="", pid=None):
    """proto::Hello {bytes token = 1; bytes worker_id = 2; string address = 3; int32 pid = 4}."""
    return (_pb_bytes(1, token) + _pb_bytes(2, worker_id) + _pb_bytes(3, address.encode())
            + _pb_int(4, os.getpid() if pid is None else pid))


def frame(method, kind, request_id, payload):
    return HEADER.pack(len(payload), method, kind, 0, request_id) + payload


def parse_frames(data):
    """[(method, kind, request_id, payload)] of the complete frames in data."""
    frames = []
    while len(data) >= HEADER.size:
        size, method, kind, _, rid = HEADER.unpack_from(data)
        if len(data) < HEADER.size + size:
            break
        frames.append((method, kind, rid, data[HEADER.size:HEADER.size + size]))
        data = data[HEADER.size + size:]
    return frames


# --- sockets ---------------------------------------------------------------

def _sockaddr(address):
    """'unix:@name' -> the abstract socket address '\\0name'."""
    assert address.startswith("unix:@"), f"not an abstract Unix socket address: {address}"
    return "\0" + address[len("unix:@"):]


def connect(address, timeout):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(_sockaddr(address))
    return s


def read_until_closed(sock, deadline_s):
    """(bytes received, seconds) until the peer closes. Fails the test if the
    connection is still open after deadline_s."""
    t0 = time.monotonic()
    data = b""
    while True:
        left = deadline_s - (time.monotonic() - t0)
        if left <= 0:
            pytest.fail(f"the server kept the connection open for {deadline_s}s "
                        f"(received {data[:200]!r})")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            return data, time.monotonic() - t0
        data += chunk


def read_frame(sock, deadline_s):
    """One whole frame (method, kind, request_id, payload) from sock."""
    t0 = time.monotonic()
    data = b""
    while True:
        frames = parse_frames(data)
        if frames:
            return frames[0]
        left = deadline_s - (time.monotonic() - t0)
        assert left > 0, f"no complete frame within {deadline_s}s (got {data!r})"
        sock.settimeout(left)
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a whole frame arrived (got {data!r})"
        data += chunk


# --- the runtime under test ------------------------------------------------

def _token_of(pid):
    """The cluster token a worker was started with (its environment)."""
    with open(f"/proc/{pid}/environ", "rb") as f:
        for item in f.read().split(b"\0"):
            if item.startswith(b"FERRY_TOKEN="):
                return item[len(b"FERRY_TOKEN="):]
    raise AssertionError(f"worker {pid} has no FERRY_TOKEN in its environment")


@pytest.fixture(scope="module")
def target(ferry_module_session):
    """The driver's and one worker's listening addresses, and the actors."""
    import ferry
    import ferry_test_actors as A
    rt = ferry._private.runtime.current()
    echo = A.Echo.remote()
    pid = ferry.get(echo.pid.remote(), timeout=GET_TIMEOUT)
    info = rt.actor_info(echo._actor_id)
    assert info["state"] == "ALIVE", info
    return {"driver": rt.address, "worker": info["address"], "echo": echo, "echo_pid": pid,
            "token": _token_of(pid)}


def assert_runtime_works(t):
    """Existing actors answer, and a new actor starts and answers (its
    REGISTER_WORKER and every connection it opens still authenticate)."""
    import ferry
    import ferry_test_actors as A
    assert ferry.get(t["echo"].add.remote(2, 3), timeout=GET_TIMEOUT) == 5
    fresh = A.Counter.remote(10)
    try:
        assert ferry.get(fresh.incr.remote(), timeout=GET_TIMEOUT) == 11
        # The new worker calls back into an object the driver owns.
        ref = ferry.put(41)
        assert ferry.get(t["echo"].inc.remote(ref), timeout=GET_TIMEOUT) == 42
    finally:
        ferry.kill(fresh)


# --- tests -----------------------------------------------------------------

@pytest.mark.parametrize("where", ["driver", "worker"])
def test_right_token_is_answered(target, where):
    """Positive control: the hand-encoded HELLO with the session's token gets
    a HelloReply (kind=reply, same request id), so the rejections below are
    caused by what they change, not by the encoding."""
    s = connect(target[where], REJECT_DEADLINE)
    try:
        s.sendall(frame(HELLO, REQUEST, 77, hello_payload(target["token"])))
        method, kind, rid, payload = read_frame(s, REJECT_DEADLINE)
        assert (method, kind, rid) == (HELLO, REPLY, 77), (method, kind, rid, payload)
    finally:
        s.close()
    assert_runtime_works(target)


def _random_garbage():
    data = bytearray(random.Random(6).randbytes(4096))
    data[6] = 0xEE  # the kind byte: not request, reply, error reply or one-way
    return bytes(data)


def _wrong_token(t):
    return frame(HELLO, REQUEST, 7, hello_payload(b"\x00" * len(t["token"])))


def _flipped_last_byte(t):
    tok = bytearray(t["token"])
    tok[-1] ^= 1
    return frame(HELLO, REQUEST, 7, hello_payload(bytes(tok)))


def _wrong_token_then_requests(t):
    """A rejected Hello with requests pipelined behind it in the same write:
    none may be dispatched (KILL_ACTOR would end the module's echo actor)."""
    actor = _pb_bytes(1, t["echo"]._actor_id)
    return (_wrong_token(t) + frame(GET_ACTOR_INFO, REQUEST, 8, actor)
            + frame(KILL_ACTOR, REQUEST, 9, actor))


ATTACKS = {
    # Bytes that are no ferry frame: an HTTP request (its header reads as an
    # unknown frame kind) and random bytes with an invalid kind byte (random
    # bytes with a valid kind would announce some payload and be closed only
    # at the handshake timeout, which the silent test covers).
    "http_request": (lambda t: b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", False),
    "random_bytes": (lambda t: _random_garbage(), False),
    # Well-formed frames, HELLO request, wrong tokens.
    "wrong_token": (_wrong_token, True),
    "token_one_bit_off": (_flipped_last_byte, True),
    "token_prefix": (lambda t: frame(HELLO, REQUEST, 7, hello_payload(t["token"][:-1])), True),
    "wrong_token_then_kill_actor": (_wrong_token_then_requests, True),
    # A reply frame is not a Hello either; the request behind it is the first
    # request, and is refused.
    "reply_then_kill_actor": (lambda t: frame(HELLO, REPLY, 5, b"") + frame(
        KILL_ACTOR, REQUEST, 7, _pb_bytes(1, t["echo"]._actor_id)), True),
    "empty_token": (lambda t: frame(HELLO, REQUEST, 7, hello_payload(b"")), True),
    "no_token_field": (lambda t: frame(HELLO, REQUEST, 7, _pb_int(4, 1)), True),
    # The right token, but the first frame is not a HELLO request.
    "task_before_hello": (lambda t: frame(PUSH_TASK, REQUEST, 7, hello_payload(t["token"])), True),
    "hello_as_one_way": (lambda t: frame(HELLO, ONE_WAY, 0, hello_payload(t["token"])), False),
    # Not a protobuf at all.
    "malformed_hello": (lambda t: frame(HELLO, REQUEST, 7, b"\xff" * 64), True),
}


@pytest.mark.parametrize("where", ["driver", "worker"])
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_unauthenticated_connection_is_closed(target, where, attack):
    make, expects_error_reply = ATTACKS[attack]
    s = connect(target[where], REJECT_DEADLINE)
    try:
        try:
            s.sendall(make(target))
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed while we were still writing: also a rejection
        data, elapsed = read_until_closed(s, REJECT_DEADLINE)
    finally:
        s.close()
    frames = parse_frames(data)
    # Nothing but (at most) one error reply ever comes back.
    assert all(kind == ERROR_REPLY for _, kind, _, _ in frames), frames
    if expects_error_reply:
        assert len(frames) == 1 and frames[0][2] == 7, frames
        assert b"token" in frames[0][3] or b"HELLO" in frames[0][3] or b"Hello" in frames[0][3], frames
    assert elapsed < REJECT_DEADLINE
    assert_runtime_works(target)


def test_silent_connections_are_closed_at_the_handshake_timeout(target):
    """Connect and send nothing (to the driver and to a worker): each is closed
    once the handshake timeout passes; meanwhile the runtime serves calls."""
    import ferry
    socks = [connect(target[w], SILENT_DEADLINE) for w in ("driver", "worker")]
    # A half-sent header is no better than silence.
    half = connect(target["driver"], SILENT_DEADLINE)
    half.sendall(frame(HELLO, REQUEST, 1, hello_payload(target["token"]))[:10])
    socks.append(half)
    try:
        t0 = time.monotonic()
        # Open, unauthenticated connections do not hold anything up.
        assert ferry.get(target["echo"].add.remote(1, 1), timeout=GET_TIMEOUT) == 2
        for s in socks:
            data, _ = read_until_closed(s, SILENT_DEADLINE - (time.monotonic() - t0))
            assert all(kind == ERROR_REPLY for _, kind, _, _ in parse_frames(data)), data
    finally:
        for s in socks:
            s.close()
    assert_runtime_works(target)


def test_oversized_first_frame_is_refused_before_its_payload(target):
    """An unauthenticated peer must not make a ferry process buffer a large
    payload: a first frame announcing far more than any Hello (256 MiB here)
    is refused on its header, so the peer cannot push the payload through.
    (The default frame bound is 1 GiB, which would let any local process
    make the driver allocate 1 GiB before the token is even looked at.)"""
    announced = 256 << 20
    s = connect(target["driver"], REJECT_DEADLINE)
    sent = 0
    try:
        s.sendall(HEADER.pack(announced, HELLO, REQUEST, 0, 7))
        chunk = b"\0" * (1 << 20)
        t0 = time.monotonic()
        try:
            while sent < announced and time.monotonic() - t0 < 3 * REJECT_DEADLINE:
                s.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass
    finally:
        s.close()
    assert sent < announced // 2, (
        f"the server accepted {sent >> 20} MiB of an unauthenticated first frame "
        f"announcing {announced >> 20} MiB")
    assert_runtime_works(target)


def _socket_inodes(pid):
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[len("socket:["):-1])
    return inodes


def _unix_sockets():
    """{inode: path} of every Unix socket with a name (/proc/net/unix)."""
    out = {}
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            parts = line.split()
            if len(parts) >= 8:
                out[parts[6]] = parts[7]
    return out


def _tcp_listeners():
    """{inode: (local address hex, port)} of every listening TCP socket."""
    out = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == "0A":  # TCP_LISTEN
                        addr, port = parts[1].split(":")
                        out[parts[9]] = (addr, int(port, 16))
        except FileNotFoundError:
            pass
    return out


LOOPBACK_HEX = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1, ::1


def test_listeners_are_abstract_unix_sockets_and_never_public_tcp(target, tmp_path):
    """Driver and workers (here two torch actors in a Gloo group that just
    moved a tensor, so the data plane is up too): every named Unix socket is
    abstract, no socket file exists, and no ferry process listens on TCP
    outside loopback (the driver not at all)."""
    import ferry
    import hardening_actors as H
    from ferry.experimental.collective import create_collective_group, destroy_collective_group
    rt = ferry._private.runtime.current()
    src, sink = H.TensorSource.remote(), H.TensorSink.remote()
    try:
        ferry.get([src.ping.remote(), sink.ping.remote()], timeout=GET_TIMEOUT)
        create_collective_group([src, sink], backend="gloo", name="security")
        got = ferry.get(sink.check.remote(src.make.remote(1 << 20, 3), 3), timeout=GET_TIMEOUT)
        assert got == ((1 << 20) // 4, True)

        driver_pid = os.getpid()
        pids = [driver_pid] + list(rt.worker_pids())
        assert len(pids) >= 4, pids  # driver, echo, src, sink
        unix, tcp = _unix_sockets(), _tcp_listeners()
        session = rt.address[len("unix:@"):].rsplit("-", 1)[0]  # "ferry-<session>"
        for pid in pids:
            inodes = _socket_inodes(pid)
            named = {unix[i] for i in inodes if i in unix}
            assert named, f"process {pid} has no named Unix socket"
            assert all(p.startswith("@") for p in named), (pid, named)
            assert any(p.startswith("@" + session + "-") for p in named), (pid, named)
            listening = {i: tcp[i] for i in inodes if i in tcp}
            public = {i: a for i, a in listening.items() if a[0] not in LOOPBACK_HEX}
            assert not public, f"process {pid} listens on TCP outside loopback: {public}"
            if pid == driver_pid:
                assert not listening, f"the driver listens on TCP: {listening}"

        session_hex = session[len("ferry-"):]
        for folder in ("/tmp", "/dev/shm", os.getcwd(), str(tmp_path)):
            files = [n for n in os.listdir(folder) if session_hex in n]
            assert not files, f"ferry left socket files in {folder}: {files}"
        destroy_collective_group("security")
    finally:
        ferry.kill(src)
        ferry.kill(sink)


def test_token_is_random_secret_sized_and_not_on_the_command_line(target):
    """The token reaches a worker only through its environment (readable by
    the same user and root, see docs/security.md), never argv (world-readable
    /proc/<pid>/cmdline), and is at least 128 random bits."""
    import ferry
    import ferry_test_actors as A
    token = target["token"]
    assert len(token) >= 32 and all(c in b"0123456789abcdef" for c in token.lower()), token
    other = A.Echo.remote()
    try:
        pid = ferry.get(other.pid.remote(), timeout=GET_TIMEOUT)
        assert _token_of(pid) == token  # one token per session
        for p in (pid, target["echo_pid"], os.getpid()):
            with open(f"/proc/{p}/cmdline", "rb") as f:
                assert token not in f.read()
        assert os.stat(f"/proc/{pid}/environ").st_mode & 0o077 == 0
    finally:
        ferry.kill(other)
