"""Cluster addresses and the files that let processes of one host find a cluster.

Ray's conventions: ``ferry start --head`` leaves the **cluster file**
``<temp dir>/ferry_current_cluster`` (Ray's ``/tmp/ray/ray_current_cluster``)
with the head's address and the cluster token, so ``ferry.init(address="auto")``
and ``ferry start --address`` on this host need neither; every node daemon
leaves a **ready file** ``<temp dir>/node-<pid>.json``, which ``ferry start``
waits for and ``ferry stop`` reads to find the daemons of this host.

Both are JSON, mode 0600, written whole (a temporary name, then a rename), so a
reader never sees half a file. The temp dir is ``--temp-dir``, else
``FERRY_TEMP_DIR``, else ``/tmp/ferry``; it is made with mode 0700 and must
belong to this user and be writable by no one else, because its files hold the
token and name the cluster a driver connects to.

Functions here are plain file and string work, safe from any thread; the files
are shared between processes, and each is replaced atomically.
"""
from __future__ import annotations

import ipaddress
import json
import os
import re
import stat
from typing import Any, NamedTuple, TypedDict

DEFAULT_TEMP_DIR = "/tmp/ferry"
CLUSTER_FILE_NAME = "ferry_current_cluster"
READY_FILE_GLOB = "node-*.json"
_SCHEME = "ferry://"
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


class ClusterFile(TypedDict):
    """``<temp dir>/ferry_current_cluster``: the cluster this host belongs to."""
    address: str  # "IP:PORT" of the head
    token: str
    node_ip: str  # this host's address in the cluster
    node_id: str  # hex id of the node whose daemon wrote the file
    writer_pid: int  # that daemon's pid: it removes the file when it stops


class ReadyFile(TypedDict):
    """``<temp dir>/node-<pid>.json``: one running node daemon of this host."""
    pid: int
    node_id: str
    address: str  # "IP:PORT" of the head
    head: bool
    node_ip: str


class ClusterTarget(NamedTuple):
    """What a driver connects with: the head's address, the token, and the
    address this host has in the cluster ("" lets the core pick)."""
    address: str
    token: str
    node_ip: str


def parse_address(address: str) -> str:
    """``"IP:PORT"``, ``"HOST:PORT"`` or ``"ferry://IP:PORT"`` -> ``"HOST:PORT"``.
    The host is an IPv4 address or a DNS name; ValueError for anything else."""
    if not isinstance(address, str):
        raise ValueError(f"a ferry cluster address is a string 'IP:PORT', got "
                         f"{type(address).__name__}")
    text = address.strip()
    if text.startswith(_SCHEME):
        text = text[len(_SCHEME):]
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad ferry cluster address {address!r}: expected 'IP:PORT' "
                         f"(e.g. '10.0.0.1:6379'), 'ferry://IP:PORT' or 'auto'")
    if not _is_ipv4(host) and (host.replace(".", "").isdigit() or not _HOSTNAME.match(host)):
        raise ValueError(f"bad ferry cluster address {address!r}: {host!r} is neither an "
                         f"IPv4 address nor a host name")
    return f"{host}:{int(port)}"


def _is_ipv4(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
        return True
    except ValueError:
        return False


def temp_dir(explicit: str | None = None) -> str:
    """The temp dir to use: ``explicit``, else FERRY_TEMP_DIR, else /tmp/ferry."""
    return os.path.abspath(explicit or os.environ.get("FERRY_TEMP_DIR") or DEFAULT_TEMP_DIR)


def ensure_private_dir(path: str) -> str:
    """Creates ``path`` (mode 0700) if missing; PermissionError if it is not a
    directory of this user that only this user can write."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    check_private_dir(path)
    return path


def check_private_dir(path: str) -> None:
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise PermissionError(f"ferry temp dir {path} is not a directory")
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise PermissionError(
            f"ferry temp dir {path} belongs to another user or others can write to it; its "
            f"files hold the cluster token. Use a private directory: set FERRY_TEMP_DIR or "
            f"pass --temp-dir")


def cluster_file_path(temp: str) -> str:
    return os.path.join(temp, CLUSTER_FILE_NAME)


def ready_file_path(temp: str, pid: int) -> str:
    return os.path.join(temp, f"node-{pid}.json")


def write_private_json(path: str, value: Any, *, replace: bool = True) -> bool:
    """Writes ``value`` as JSON to ``path`` with mode 0600, atomically. With
    ``replace=False`` an existing file is kept and the result is False."""
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(value, f)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)  # fails if path exists: create-if-absent, atomically
            return True
        except FileExistsError:
            return False
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def read_json(path: str) -> dict[str, Any] | None:
    """The JSON object in ``path``; None if the file does not exist. ValueError
    if it holds something else."""
    try:
        with open(path) as f:
            value = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read {path}: {e}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return value


def remove_file(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def read_cluster_file(temp: str) -> ClusterFile | None:
    """This host's cluster file in ``temp``; None if there is none. ValueError
    if it is malformed; PermissionError if ``temp`` is not private."""
    if not os.path.isdir(temp):
        return None
    check_private_dir(temp)
    path = cluster_file_path(temp)
    value = read_json(path)
    if value is None:
        return None
    kinds = {"address": str, "token": str, "node_ip": str, "node_id": str, "writer_pid": int}
    for key, kind in kinds.items():
        if not isinstance(value.get(key), kind):
            raise ValueError(f"malformed ferry cluster file {path}: no {kind.__name__} {key!r}")
    return ClusterFile(address=value["address"], token=value["token"], node_ip=value["node_ip"],
                       node_id=value["node_id"], writer_pid=value["writer_pid"])


def cluster_file_for(address: str, temp: str) -> ClusterFile | None:
    """The cluster file when it names ``address`` (normalized), else None."""
    found = read_cluster_file(temp)
    return found if found is not None and found["address"] == address else None


def resolve(address: str, temp: str) -> ClusterTarget:
    """Where a driver on this host connects for ``address`` ("auto" or
    "[ferry://]IP:PORT"), as Ray's ``ray.init(address=...)`` resolves it.

    The token is FERRY_TOKEN, else the cluster file's when its address
    matches; the node ip is FERRY_NODE_IP, else the cluster file's, else "".
    ConnectionError when "auto" finds no cluster file or no token is known;
    ValueError for a malformed address."""
    if isinstance(address, str) and address.strip() == "auto":
        known = read_cluster_file(temp)
        if known is None:
            raise ConnectionError(
                f"no ferry cluster is running on this host (no {cluster_file_path(temp)}); "
                f"start one with `ferry start --head`")
        head = known["address"]
    else:
        head = parse_address(address)
        known = cluster_file_for(head, temp)
    token = os.environ.get("FERRY_TOKEN") or (known["token"] if known else "")
    if not token:
        raise ConnectionError(
            f"no token for the ferry cluster at {head}: set FERRY_TOKEN to the token "
            f"`ferry start --head` printed")
    node_ip = os.environ.get("FERRY_NODE_IP") or (known["node_ip"] if known else "")
    return ClusterTarget(head, token, node_ip)
