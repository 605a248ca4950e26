"""Actor classes for the direct tensor transport (RDT) tests.

Imported through the `rdt` fixture of the RDT test modules (and by worker
processes, through PYTHONPATH set in conftest), like ferry_test_actors.
Tensors are deterministic (seeded) so that the driver can rebuild what a
producer made and compare byte for byte.
"""
import collections
import dataclasses
import hashlib
import os
import time

import torch

import ferry

# Every dtype torch 1.13 has on CPU that the guide's transports carry.
DTYPES = ("float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64",
          "uint8", "bool", "complex64", "complex128")

Pair = collections.namedtuple("Pair", ["first", "second"])


@dataclasses.dataclass
class Inner:
    label: str
    weights: torch.Tensor


@dataclasses.dataclass
class Outer:
    name: str
    inner: Inner
    bias: torch.Tensor
    extra: list


def make_tensor(dtype, shape, seed):
    """A deterministic tensor of `dtype` (a name) and `shape`."""
    g = torch.Generator().manual_seed(seed)
    dt = getattr(torch, dtype)
    if dtype == "bool":
        return torch.randint(0, 2, shape, generator=g).to(torch.bool)
    if dtype in ("int8", "int16", "int32", "int64", "uint8"):
        info = torch.iinfo(dt)
        return torch.randint(max(info.min, -1000), min(info.max, 1000) + 1, shape, generator=g,
                             dtype=torch.int64).to(dt)
    if dtype.startswith("complex"):
        return torch.randn(shape, generator=g, dtype=dt)
    return torch.randn(shape, generator=g, dtype=torch.float64).to(dt)


def make_value(kind, seed=0):
    """The return values the container/dtype tests use, by name."""
    if kind == "dict":
        return {"a": make_tensor("float32", (4, 5), seed), "b": make_tensor("int64", (7,), seed + 1),
                "meta": "hello"}
    if kind == "list":
        return [make_tensor("float64", (3,), seed), 42, make_tensor("uint8", (2, 2), seed + 1)]
    if kind == "tuple":
        return (make_tensor("int32", (6,), seed), "x", (make_tensor("float32", (1, 3), seed + 1),))
    if kind == "dataclass":
        return Outer("outer", Inner("inner", make_tensor("float32", (3, 3), seed)),
                     make_tensor("float64", (3,), seed + 1),
                     [make_tensor("int16", (2,), seed + 2), {"deep": make_tensor("bool", (4,), seed + 3)}])
    if kind == "namedtuple":
        return Pair(make_tensor("float32", (2, 3), seed), make_tensor("complex64", (2,), seed + 1))
    if kind == "dtypes":
        return {dt: make_tensor(dt, (3, 4), seed + i) for i, dt in enumerate(DTYPES)}
    if kind == "shapes":
        base = make_tensor("float32", (3, 5), seed)
        return {
            "zero_dim": make_tensor("float64", (), seed + 1),
            "zero_dim_int": torch.tensor(7, dtype=torch.int32),
            "empty": torch.empty((0,), dtype=torch.float32),
            "empty_2d": torch.empty((3, 0), dtype=torch.int64),
            "transposed": base.t(),
            "strided": make_tensor("int32", (4, 6), seed + 2)[::2, 1::2],
            # stride 0: four rows over one row's storage
            "expanded": make_tensor("float32", (1, 5), seed + 3).expand(4, 5),
        }
    if kind == "single":
        return make_tensor("float32", (100, 100), seed)
    raise ValueError(f"unknown kind {kind!r}")


def tensors_in(value):
    """(path, tensor) for every tensor in a value, in a stable order."""
    out = []

    def walk(x, path):
        if isinstance(x, torch.Tensor):
            out.append((path, x))
        elif dataclasses.is_dataclass(x) and not isinstance(x, type):
            for f in dataclasses.fields(x):
                walk(getattr(x, f.name), f"{path}.{f.name}")
        elif isinstance(x, dict):
            for k in sorted(x, key=str):
                walk(x[k], f"{path}[{k!r}]")
        elif isinstance(x, (list, tuple)):
            for i, v in enumerate(x):
                walk(v, f"{path}[{i}]")
    walk(value, "")
    return out


def digest(t):
    """(dtype, shape, sha256 of the element bytes in logical order)."""
    flat = t.detach().contiguous().reshape(-1)
    raw = flat.view(torch.uint8) if flat.numel() else torch.empty(0, dtype=torch.uint8)
    return str(t.dtype), tuple(t.shape), hashlib.sha256(raw.numpy().tobytes()).hexdigest()


def describe(value):
    """Structure and tensor digests of a value: equal iff the same values arrived."""
    return {
        "type": type(value).__name__,
        "tensors": [(path, *digest(t)) for path, t in tensors_in(value)],
    }


class _Base:
    """Methods both producers and receivers have."""

    def stats(self):
        return ferry.experimental.tensor_store_stats()

    def pid(self):
        return os.getpid()

    def ping(self):
        return "pong"

    def describe(self, value):
        return describe(value)

    def echo(self, value):
        """Returns what it received through the object store (default transport)."""
        return value

    def sum(self, t):
        return float(t.double().sum())

    def sum_key(self, d, key):
        return float(d[key].double().sum())

    def sum_many(self, *args, **kwargs):
        total = 0.0
        for _, t in tensors_in([list(args), kwargs]):
            total += float(t.double().sum())
        return total

    def describe_args(self, *args, **kwargs):
        return describe([list(args), kwargs])

    def describe_args_getting_nested(self, *args, **kwargs):
        """describe_args after getting each nested ref here as the driver
        would: a two-sided RDT ref through the object store."""
        def fetch(x):
            if isinstance(x, ferry.ObjectRef):
                return ferry.get(x, _tensor_transport="object_store")
            if isinstance(x, list):
                return [fetch(v) for v in x]
            if isinstance(x, dict):
                return {k: fetch(v) for k, v in x.items()}
            return x
        return describe([list(args), fetch(kwargs)])

    def plain_get_error(self, refs):
        """What a plain ferry.get of the first nested ref raises here."""
        try:
            ferry.get(refs[0])
        except ValueError as e:
            return str(e)
        return None

    def same_memory(self, a, b):
        return a.data_ptr() == b.data_ptr(), a is b

    def sum_with_stats(self, t):
        return float(t.double().sum()), ferry.experimental.tensor_store_stats()

    def hold(self, t, flag_path, max_s):
        """Keeps the task running (with `t` as its argument) until flag_path exists."""
        deadline = time.monotonic() + max_s
        while not os.path.exists(flag_path) and time.monotonic() < deadline:
            time.sleep(0.005)  # poll: the driver creates the file
        return float(t.double().sum()), time.monotonic()

    def sum_and_time(self, t):
        return float(t.double().sum()), time.monotonic()

    # --- one-sided transports (put/get inside actors) ---

    def put_value(self, kind, transport, seed=0):
        """ferry.put of make_value(kind) with a one-sided transport, here: [ref]."""
        return [ferry.put(make_value(kind, seed), _tensor_transport=transport)]

    def produce(self, tensors, transport="nixl"):
        """The guide's produce: one put per tensor, a list of refs."""
        return [ferry.put(t, _tensor_transport=transport) for t in tensors]

    def get_describe(self, refs):
        """ferry.get of refs (a list) inside this actor: their descriptions."""
        return [describe(v) for v in ferry.get(refs, timeout=60)]

    def transfer_log(self):
        return ferry.experimental.transfer_log()


class _ProducerImpl(_Base):
    def __init__(self):
        self.kept = None
        self.ptr = None

    @ferry.method(tensor_transport="gloo")
    def make(self, kind, seed=0):
        return make_value(kind, seed)

    def make_plain(self, kind, seed=0):
        """Same values, no decorator: RDT only through .options()."""
        return make_value(kind, seed)

    @ferry.method(tensor_transport="gloo")
    def make_recorded(self, n, seed=0):
        """A tensor the actor remembers (pointer and object), as in the guide's mutability examples."""
        self.kept = make_tensor("float32", (n,), seed)
        self.ptr = self.kept.data_ptr()
        return self.kept

    @ferry.method(tensor_transport="gloo")
    def make_recorded_transposed(self, n, seed=0):
        self.kept = make_tensor("float32", (n, 3), seed).t()
        self.ptr = self.kept.data_ptr()
        return self.kept

    def is_recorded(self, t):
        """(same object, same memory, same strides) as the tensor make_recorded* returned."""
        return t is self.kept, t.data_ptr() == self.kept.data_ptr(), t.stride() == self.kept.stride()

    def recorded_ptr(self):
        return self.ptr

    def ptr_of(self, t):
        return t.data_ptr(), float(t.double().sum())

    def add_one_in_place(self, t):
        t += 1
        return float(t.double().sum())

    @ferry.method(tensor_transport="gloo")
    def derive(self, t, factor):
        """An RDT tensor computed from an (RDT) input: a link of a chain."""
        return {"t": t * factor, "src_sum": float(t.double().sum())}

    @ferry.method(tensor_transport="gloo")
    def derive_from_dict(self, d, factor):
        return {"t": d["t"] + factor, "src_sum": float(d["t"].double().sum())}

    @ferry.method(tensor_transport="gloo")
    def fail_rdt(self, msg):
        raise KeyError(msg)

    def wait_freed(self, timeout):
        """wait_tensor_freed on the remembered tensor: ("freed" | exception name, when)."""
        try:
            ferry.experimental.wait_tensor_freed(self.kept, timeout=timeout)
        except TimeoutError as e:
            return type(e).__name__, isinstance(e, TimeoutError), time.monotonic()
        return "freed", True, time.monotonic()

    def busy(self, started_path, flag_path, max_s):
        """A long computation (holds the GIL most of the time) that ends when
        flag_path appears; returns whether it saw the flag."""
        with open(started_path, "w"):
            pass
        deadline = time.monotonic() + max_s
        x = 0
        while time.monotonic() < deadline:
            for i in range(20000):
                x += i * i
            if os.path.exists(flag_path):
                return True
        return False


class _ShoutingProducerImpl(_ProducerImpl):
    """A producer whose decorator spells the transport in upper case."""

    @ferry.method(tensor_transport="GLOO")
    def make(self, kind, seed=0):
        return make_value(kind, seed)


class _ReceiverImpl(_Base):
    """Consumes RDT arguments; returns through the object store."""


Producer = ferry.remote(_ProducerImpl)
ShoutingProducer = ferry.remote(_ShoutingProducerImpl)
Receiver = ferry.remote(_ReceiverImpl)


@ferry.remote
class GlooStage:
    """A pipeline stage for the observability tests: `produce` keeps a tensor
    of ones for a gloo transfer; `consume` sums what it receives."""

    @ferry.method(tensor_transport="gloo")
    def produce(self, n):
        return torch.ones(n)

    def consume(self, t):
        return float(t.sum())

    def ping(self):
        return "pong"
