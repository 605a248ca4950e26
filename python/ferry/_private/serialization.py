"""Values to bytes and back, with pickle protocol 5.

Values made only of scalars, CPU tensors, numpy arrays and ObjectRefs (in
small tuples, lists and dicts) take the C pickler with ferry's tensor
reducer; anything else takes cloudpickle (code, classes from __main__).
Large buffers (numpy arrays, CPU torch tensors) travel out of band: the core
copies them once into shared memory, and readers get arrays that view the
mapped bytes.

ObjectRefs: a top-level call argument (positional or keyword) becomes an
index into the call's dependencies, which the core resolves to values
before the call. A ref anywhere else (nested in an argument, a return, a
put) stays a ref: the pickler collects it (``contained``), the core keeps it
alive while the serialized value lives, and the process that unpickles it
registers as a borrower with its owner before the value reaches user code
(ferry._private.refs). These are Ray's semantics.
"""
import collections
import functools
import io
import pickle
import sys

import cloudpickle

from ferry._core import ObjectRef
from ferry._private import refs as _refs
from ferry._private import transports as _transports

PROTOCOL = 5


def _rebuild_tensor(buffer, dtype, shape, requires_grad):
    import torch
    if len(buffer) == 0:
        t = torch.empty(shape, dtype=dtype)
    else:
        t = torch.frombuffer(buffer, dtype=torch.uint8).view(dtype).reshape(shape)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _tensor_from_array(buffer, dtype, shape):
    """A CPU tensor over the bytes of an out-of-band buffer, read as a numpy
    dtype (no copy)."""
    import numpy
    import torch
    return torch.from_numpy(numpy.frombuffer(buffer, dtype=dtype).reshape(shape))


def _reduce_tensor(t):
    import torch
    if type(t) is torch.Tensor and not t.requires_grad:
        # The common case, in as few torch calls as possible (each costs
        # microseconds when its code is cold): a dense CPU tensor whose
        # dtype numpy has. Its numpy view is the tensor's own bytes.
        try:
            arr = t.numpy()
        except (RuntimeError, TypeError):  # not CPU, sparse, bfloat16, conj view, ...
            arr = None
        if arr is not None and arr.flags.c_contiguous:
            return _tensor_from_array, (pickle.PickleBuffer(arr), arr.dtype.str, arr.shape)
    if type(t) is not torch.Tensor or t.device.type != "cpu" or t.is_sparse or t.is_quantized:
        return t.__reduce_ex__(PROTOCOL)
    try:
        # Conjugate and negative views are materialized: torch's own pickling
        # drops those bits.
        d = t.detach().resolve_conj().resolve_neg()
        if not d.is_contiguous():
            d = d.contiguous()
        try:
            arr = d.numpy()  # the tensor's own bytes, no copy
        except TypeError:  # a dtype numpy lacks (bfloat16, ...): view the bytes
            flat = d.reshape(-1)
            arr = (flat.view(torch.uint8) if flat.numel() else flat.to(torch.uint8)).numpy()
        buf = pickle.PickleBuffer(arr)
    except (RuntimeError, TypeError, ValueError):
        return t.__reduce_ex__(PROTOCOL)
    return _rebuild_tensor, (buf, t.dtype, tuple(t.shape), t.requires_grad)


class _Dep:
    """A top-level ObjectRef argument's place in the argument structure: an
    index into the call's dependencies."""
    __slots__ = ("index",)

    def __init__(self, index):
        self.index = index


def _ref_reducer(contained):
    """A reducer that pickles ObjectRefs as refs and collects them in
    ``contained``. A closure, not a bound method: a pickler whose
    dispatch_table referred to the pickler would be a reference cycle, and
    its memo would keep every pickled ref alive until the next GC."""
    def reduce_ref(ref):
        contained.append(ref)
        return _refs.rebuild_ref, ref._rebuild_args()
    return reduce_ref


class _Refs:
    """Pickler mixin: _Dep markers become persistent ids (dependency
    indices); every other ObjectRef is pickled as a ref and collected in
    ``contained``."""

    def _own_reducers(self):
        self.contained = []
        torch = sys.modules.get("torch")
        table = {ObjectRef: _ref_reducer(self.contained)}
        if torch is not None:
            table[torch.Tensor] = _reduce_tensor
        return table

    def persistent_id(self, obj):
        return obj.index if type(obj) is _Dep else None


class _Pickler(_Refs, cloudpickle.CloudPickler):
    """cloudpickle (code objects, classes from __main__, ...) with ours for
    CPU torch tensors (their bytes travel out of band) and ObjectRefs."""

    def __init__(self, file, buffers):
        # The C pickler reads dispatch_table once, in __init__: set it first.
        self.dispatch_table = collections.ChainMap(self._own_reducers(),
                                                   cloudpickle.CloudPickler.dispatch_table)
        super().__init__(file, protocol=PROTOCOL, buffer_callback=buffers.append)


# Values made only of these pickle with the C pickler alone (about 6x faster
# than cloudpickle): no ObjectRefs, tensors or code objects can hide inside.
_PLAIN_SCALARS = frozenset([type(None), bool, int, float, complex, str, bytes])
_MAX_PLAIN_ITEMS = 64


def _is_plain(value, depth=0, leaf=_PLAIN_SCALARS.__contains__):
    """True when `value` is a small tree of tuples, lists and dicts with
    scalar keys, whose leaves' types satisfy `leaf`."""
    t = type(value)
    if leaf(t):
        return True
    if depth > 3:
        return False
    if t is tuple or t is list:
        return len(value) <= _MAX_PLAIN_ITEMS and all(_is_plain(v, depth + 1, leaf) for v in value)
    if t is dict:
        return len(value) <= _MAX_PLAIN_ITEMS and all(
            type(k) in _PLAIN_SCALARS and _is_plain(v, depth + 1, leaf) for k, v in value.items())
    return False


def _scalar_or_array(t):
    """Leaves the C pickler with our tensor reducer handles alone: plain
    scalars, CPU torch tensors (their bytes go out of band) and numpy arrays
    (which pickle themselves out of band under protocol 5)."""
    if t in _PLAIN_SCALARS:
        return True
    torch = sys.modules.get("torch")
    if torch is not None and t is torch.Tensor:
        return True
    np = sys.modules.get("numpy")
    return np is not None and t is np.ndarray


def _is_plain_with_arrays(value):
    return _is_plain(value, 0, _scalar_or_array)


def _scalar_array_or_ref(t):
    return t is ObjectRef or t is _Dep or _scalar_or_array(t)


class _ArrayPickler(pickle.Pickler):
    """The C pickler with the tensor reducer only: for values that passed
    _is_plain_with_arrays (no code, classes or ObjectRefs inside)."""

    def __init__(self, file, buffers):
        torch = sys.modules.get("torch")
        if torch is not None:
            self.dispatch_table = {torch.Tensor: _reduce_tensor}
        super().__init__(file, protocol=PROTOCOL, buffer_callback=buffers.append)


class _ArgPickler(_Refs, pickle.Pickler):
    """The C pickler with the tensor and ref reducers: for arguments that
    passed _is_plain with _scalar_array_or_ref leaves."""

    def __init__(self, file, buffers):
        self.dispatch_table = self._own_reducers()
        super().__init__(file, protocol=PROTOCOL, buffer_callback=buffers.append)


def _dumps_with_arrays(value):
    buffers = []
    f = io.BytesIO()
    _ArrayPickler(f, buffers).dump(value)
    return f.getbuffer(), _raw(buffers)


def _raw(buffers):
    return [b.raw() for b in buffers]


def dumps(value):
    """-> (data, buffers, contained) for a value; ``contained``: the
    ObjectRefs inside it."""
    if _is_plain(value):
        return pickle.dumps(value, protocol=PROTOCOL), [], []
    if _is_plain_with_arrays(value):
        data, buffers = _dumps_with_arrays(value)
        return data, buffers, []
    buffers = []
    f = io.BytesIO()
    pickler = _Pickler(f, buffers)
    pickler.dump(value)
    return f.getbuffer(), _raw(buffers), pickler.contained


def _mark_deps(args, kwargs, deps):
    """(args, kwargs) with each top-level ObjectRef replaced by a _Dep
    marker; the refs go to ``deps``, each once however often it appears."""
    index = {}

    def dep(ref):
        key = ref.binary()
        i = index.get(key)
        if i is None:
            i = index[key] = len(deps)
            deps.append(ref)
        return _Dep(i)

    if any(type(a) is ObjectRef for a in args):
        args = tuple(dep(a) if type(a) is ObjectRef else a for a in args)
    if kwargs and any(type(v) is ObjectRef for v in kwargs.values()):
        kwargs = {k: dep(v) if type(v) is ObjectRef else v for k, v in kwargs.items()}
    return args, kwargs


def dumps_args(args, kwargs, cls=None):
    """-> (data, buffers, deps, contained) for a call's arguments (with
    ``cls``, an actor's constructor call or a remote function's call, which
    also carries the tensor transports registered here). Each top-level ObjectRef argument
    becomes a dependency in ``deps``, resolved to its value before the call;
    refs nested deeper stay refs, in ``contained``, for the task to borrow."""
    if cls is None and _is_plain(args) and _is_plain(kwargs):
        return pickle.dumps((args, kwargs), protocol=PROTOCOL), [], [], []
    deps, buffers = [], []
    args, kwargs = _mark_deps(args, kwargs, deps)
    f = io.BytesIO()
    if (cls is None and _is_plain(args, 0, _scalar_array_or_ref)
            and _is_plain(kwargs, 0, _scalar_array_or_ref)):
        pickler = _ArgPickler(f, buffers)  # no cloudpickle needed
        pickler.dump((args, kwargs))
    else:
        pickler = _Pickler(f, buffers)
        pickler.dump((args, kwargs) if cls is None else
                     ((_transports.registered(), cls, args, kwargs), {}))
    return f.getbuffer(), _raw(buffers), deps, pickler.contained


def loads(data, buffers):
    value = pickle.loads(data, buffers=buffers)
    _refs.register_borrowed()
    return value


class _ArgUnpickler(pickle.Unpickler):
    def __init__(self, data, buffers, values):
        super().__init__(io.BytesIO(data), buffers=buffers)
        self._values = values

    def persistent_load(self, pid):
        return self._values[pid]


def loads_args(data, buffers, values):
    """Inverse of dumps_args; `values` are the resolved dependencies."""
    if not values:
        return loads(data, buffers)
    value = _ArgUnpickler(data, buffers, values).load()
    _refs.register_borrowed()
    return value


# --- RDT values: tensors stay in the producer, the rest is a skeleton -------

def torch_module():
    return sys.modules.get("torch")


def _dtype_name(dtype):
    return str(dtype).rsplit(".", 1)[-1]  # torch.float32 -> float32


class _TensorIds:
    """Pickler mixin: every torch.Tensor becomes an index into ``tensors``
    (each tensor object once); the tensors themselves are not copied."""

    def _init_tensors(self, tensors):
        self._tensor_type = torch_module().Tensor
        self._tensors = tensors
        self._index = {}

    def persistent_id(self, obj):
        if not isinstance(obj, self._tensor_type):
            return None
        index = self._index.get(id(obj))
        if index is None:
            index = self._index[id(obj)] = len(self._tensors)
            self._tensors.append(obj)
        return index


class _RdtPickler(_TensorIds, cloudpickle.CloudPickler):
    def __init__(self, file, buffers, tensors):
        self.contained = []
        # Tensors never reach the table (persistent_id takes them first).
        self.dispatch_table = collections.ChainMap({ObjectRef: _ref_reducer(self.contained)},
                                                   cloudpickle.CloudPickler.dispatch_table)
        super().__init__(file, protocol=PROTOCOL, buffer_callback=buffers.append)
        self._init_tensors(tensors)


class _PlainRdtPickler(_TensorIds, pickle.Pickler):
    """The C pickler alone, for values that passed _is_plain_with_arrays."""

    def __init__(self, file, buffers, tensors):
        self.contained = []  # no refs pass _is_plain_with_arrays
        super().__init__(file, protocol=PROTOCOL, buffer_callback=buffers.append)
        self._init_tensors(tensors)


def dumps_rdt(value):
    """-> (data, buffers, tensors, contained): the skeleton, the tensors
    found in ``value`` (nested anywhere picklable; [] when none) and the
    ObjectRefs inside it."""
    if torch_module() is None:
        data, buffers, contained = dumps(value)
        return data, buffers, [], contained
    buffers, tensors = [], []
    f = io.BytesIO()
    pickler = (_PlainRdtPickler if _is_plain_with_arrays(value) else _RdtPickler)(
        f, buffers, tensors)
    pickler.dump(value)
    return f.getbuffer(), _raw(buffers), tensors, pickler.contained


@functools.lru_cache(maxsize=None)
def _dlpack():
    from torch.utils import dlpack
    return dlpack


def export_tensor(t):
    """What the core takes to keep a tensor in place: its bytes are shared
    through DLPack, never copied. Usually ``(capsule,)``: the capsule
    describes the tensor itself (dtype, shape, strides; a non-contiguous one
    is kept as the span of storage its strides cover). For a dtype torch's
    DLPack lacks (bool on torch 1.13): ``(capsule, dtype, shape, strides,
    device, nbytes)`` with a capsule over the bytes (strides None =
    contiguous)."""
    try:
        return (_dlpack().to_dlpack(t.detach() if t.requires_grad else t),)
    except (RuntimeError, TypeError, BufferError):
        return _export_bytes(t)


def _export_bytes(t):
    torch = torch_module()
    shape = tuple(t.shape)
    base = t.detach()
    if base.is_contiguous():
        strides = None
        flat = base.reshape(-1)
    else:
        strides = tuple(base.stride())
        extent = 1 + sum((n - 1) * st for n, st in zip(shape, strides)) if base.numel() else 0
        flat = torch.as_strided(base, (extent,), (1,), base.storage_offset())
    raw = flat.view(torch.uint8) if flat.numel() else torch.empty(0, dtype=torch.uint8, device=t.device)
    device = "cpu" if t.device.type == "cpu" else f"{t.device.type}:{t.device.index or 0}"
    return (_dlpack().to_dlpack(raw), _dtype_name(t.dtype), shape, strides, device,
            flat.numel() * t.element_size())


def _shape_view(raw, dtype, shape, strides):
    torch = __import__("torch")
    typed = raw.view(getattr(torch, dtype))
    if strides:
        return torch.as_strided(typed, shape, strides)
    return typed.reshape(shape)


def import_tensor(capsule, dtype, shape, strides=()):
    """A torch tensor over the bytes a capsule describes (no copy). dtype
    None: the capsule is typed (it carries dtype, shape and strides);
    otherwise it holds bytes that dtype, shape and strides describe."""
    t = _dlpack().from_dlpack(capsule)
    return t if dtype is None else _shape_view(t, dtype, shape, strides)


def tensor_from_buffer(buffer, dtype, shape, strides=()):
    """A torch tensor over a buffer of fetched bytes (no copy)."""
    torch = __import__("torch")
    if len(buffer) == 0:
        return torch.empty(shape, dtype=getattr(torch, dtype))
    return _shape_view(torch.frombuffer(buffer, dtype=torch.uint8), dtype, shape, strides)


class _RdtUnpickler(pickle.Unpickler):
    def __init__(self, data, buffers, tensors):
        super().__init__(io.BytesIO(data), buffers=buffers)
        self._tensors = tensors

    def persistent_load(self, pid):
        return self._tensors[pid]


def loads_rdt(data, buffers, tensors):
    value = _RdtUnpickler(data, buffers, tensors).load()
    _refs.register_borrowed()
    return value
