"""Types of ferry._core, the C++ extension built from python/src/.

ObjectRef, the tables, the options dicts and Node are typed in full;
Runtime's data-path methods are called only by ferry's own modules and stay
Any here."""
from typing import Any, Callable, TypedDict

class TransportInfo(TypedDict):
    name: str
    kind: str  # "object_store", "one_sided" or "two_sided"
    devices: list[str]
    available: bool
    same_host: bool
    collective_backends: list[str]
    one_sided_backends: list[str]
    custom: bool  # registered by a user

class ObjectRef:
    def hex(self) -> str: ...
    def binary(self) -> bytes: ...
    @property
    def owner_address(self) -> str: ...
    @property
    def owner_id(self) -> str: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...
    def __reduce__(self) -> tuple[Any, ...]: ...
    def tensor_transport(self) -> str | None: ...
    def _rebuild_args(self) -> tuple[bytes, str, bytes, str]: ...
    def __await__(self) -> Any: ...
    def future(self) -> Any: ...
    def as_future(self) -> Any: ...

class DriverOptions(TypedDict):
    """Runtime.start_driver's options (ferry._private.runtime.driver_options)."""
    address: str  # "" = the embedded single-host runtime; else "IP:PORT" of the head
    token: str  # the cluster token ("" when embedded)
    node_ip: str  # this host's address in the cluster; "" = the one that routes to the head
    num_cpus: float | None  # embedded only
    num_gpus: float | None  # embedded only
    resources: dict[str, float] | None  # embedded only

class NodeInfo(TypedDict):
    """One node as Runtime.nodes() lists it (ray.nodes()'s keys)."""
    NodeID: str  # hex
    Alive: bool
    NodeManagerAddress: str  # its IP
    Resources: dict[str, float]  # total
    AvailableResources: dict[str, float]  # free now

class NodeOptions(TypedDict):
    """Node.start's options (what `ferry start` passes)."""
    head: bool
    address: str  # "IP:PORT" of the head when joining; "" on a head
    port: int  # the head's port
    node_ip: str  # this node's address; "" on a joining node = the one that routes to the head
    token: str  # "" on a head = make one
    num_cpus: float
    num_gpus: float
    resources: dict[str, float]
    log_dir: str  # where the node's workers write their output; "" = no files

class Node:
    """A node process's part of the cluster (the head, or a node that joined
    one), run by ferry._private.node_daemon."""
    @staticmethod
    def start(options: NodeOptions) -> Node: ...
    @property
    def address(self) -> str: ...  # "IP:PORT" of the head
    @property
    def token(self) -> str: ...
    @property
    def node_id(self) -> str: ...  # hex
    @property
    def node_ip(self) -> str: ...
    def wait(self, timeout: float | None) -> str | None:
        """Blocks (GIL released) until the node stops -> why; None after timeout s."""
    def stop(self) -> None: ...

class Runtime:
    @staticmethod
    def start_driver(options: DriverOptions) -> Runtime: ...
    @staticmethod
    def start_worker() -> Runtime: ...
    @property
    def session(self) -> str: ...
    @property
    def head_address(self) -> str: ...
    @property
    def token(self) -> str: ...
    @property
    def node_id(self) -> str: ...  # hex: the node this process runs on
    def nodes(self) -> list[NodeInfo]: ...
    def shutdown(self) -> None: ...
    def __getattr__(self, name: str) -> Any: ...

def transports() -> list[TransportInfo]: ...

class GpuSupport(TypedDict):
    cuda: bool  # the CUDA runtime loads and at least one device is visible
    devices: int
    cuda_library: str  # "" when no runtime loads
    driver_version: int  # 13000 for 13.0; 0 without a driver
    runtime_version: int
    nccl: bool  # NCCL loads
    nccl_library: str
    nccl_version: int  # 22703 for 2.27.3
    reason: str  # why cuda (or else nccl) is False; "" when both are True

def gpu_support() -> GpuSupport: ...

class HeadClient:
    """A head's tables and its processes' states, for `ferry status`, `ferry list`, `ferry memory`
    and the dashboard (not a session member)."""
    @staticmethod
    def connect(address: str, token: str) -> HeadClient: ...
    def nodes(self, timeout_s: float = 10.0) -> list[dict[str, Any]]: ...  # ferry.nodes()'s rows
    def actors(self, timeout_s: float = 10.0) -> list[dict[str, Any]]: ...
    # ProcessInfo / ProcessState of ferry.proto as dicts (ids in hex)
    def processes(self, timeout_s: float = 10.0) -> list[dict[str, Any]]: ...
    def states(self, processes: list[dict[str, Any]], max_objects: int = 0,
               max_transfers: int = 0, timeline: bool = False,
               timeout_s: float = 10.0) -> list[dict[str, Any]]: ...
def register_one_sided_transport(name: str, devices: list[str],
                                 factory: Callable[[], Any]) -> None: ...
def register_two_sided_transport(name: str, devices: list[str],
                                 factory: Callable[[Any], Any]) -> None: ...
def status_codes() -> dict[str, int]: ...
def check_tensor_device(transport: str, device: str) -> None: ...
def install_shm_allocator() -> bool: ...
