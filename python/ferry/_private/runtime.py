"""The process's one ferry runtime: start (driver or worker), look up, stop."""
import atexit
import os
import sys
import threading

from ferry import _core
from ferry.exceptions import FerryError

_lock = threading.Lock()
_runtime = None


def worker_command():
    """argv that starts a Python actor worker with this interpreter."""
    return [sys.executable, "-m", "ferry._worker"]


def _install_shm_allocator():
    """Puts this process's large CPU tensors in ferry's shared-memory arena
    (so tensor_transport="shm" pulls them with one copy), unless
    FERRY_SHM_ARENA=0. Tensors made before this keep their memory."""
    if os.environ.get("FERRY_SHM_ARENA", "1") != "0":
        _core.install_shm_allocator()


def driver_options(address="", token="", node_ip="", num_cpus=None, num_gpus=None,
                   resources=None):
    """The options of _core.Runtime.start_driver: address "" runs the
    embedded single-host runtime; else "IP:PORT" of the cluster's head."""
    return {"address": address, "token": token, "node_ip": node_ip, "num_cpus": num_cpus,
            "num_gpus": num_gpus, "resources": resources}


def init(options=None):
    """Starts this process's driver runtime with `options` (driver_options();
    the embedded runtime when None). Failing to reach a cluster raises
    ConnectionError."""
    global _runtime
    if options is None:
        options = driver_options()
    with _lock:
        if _runtime is not None:
            raise RuntimeError("ferry.init() was already called in this process; "
                               "call ferry.shutdown() first")
        # Workers import the driver's modules by name: give them its path.
        os.environ["FERRY_SYS_PATH"] = os.pathsep.join(p for p in sys.path if p)
        try:
            _runtime = _core.Runtime.start_driver(options)
        except (RuntimeError, OSError, FerryError) as e:
            if not options["address"]:
                raise
            raise ConnectionError(
                f"cannot connect to the ferry cluster at {options['address']}: {e}") from e
        _install_shm_allocator()
        return _runtime


def start_worker():
    global _runtime
    with _lock:
        _install_shm_allocator()
        _runtime = _core.Runtime.start_worker()
        return _runtime


def current():
    """The running runtime; starts a driver on first use (auto-init)."""
    rt = _runtime
    if rt is not None:
        return rt
    with _lock:
        if _runtime is not None:
            return _runtime
    try:
        return init()
    except RuntimeError:  # another thread won the race
        return _runtime


def for_handle(session):
    """The runtime to call an actor of `session` with; a clear error for a
    handle that outlived ferry.shutdown() (no silent new session)."""
    rt = _runtime
    if rt is None or rt.session != session:
        from ferry.exceptions import ActorDiedError
        raise ActorDiedError("this actor belongs to a ferry session that was shut down; actors do "
                             "not survive ferry.shutdown(): create the actor again")
    return rt


def is_initialized():
    return _runtime is not None


def shutdown():
    global _runtime
    with _lock:
        rt, _runtime = _runtime, None
    if rt is not None:
        rt.shutdown()


atexit.register(shutdown)
