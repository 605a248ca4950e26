"""Values to bytes and back, with pickle protocol 5.

Values made only of scalars, CPU tensors, numpy arrays and ObjectRefs (in
small tuples, lists and dicts) take the C pickler with ferry's tensor
reducer; anything else takes cloudpickle (code, classes from __main__).
Large buffers (numpy arrays, CPU torch tensors) travel out of band: the core
copies them once into shared memory, and readers get arrays that view the
mapped bytes. ObjectRefs inside call arguments become indices into a list of
dependencies that the core resolves before the call.
"""
import collections
import functools
import io
import pickle
import sys

import cloudpickle

from ferry._core import ObjectRef

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


def _dispatch_table():
    """cloudpickle's reducers (code objects, classes from __main__, ...) plus
    ours for CPU torch tensors, whose bytes then travel out of band."""
    torch = sys.modules.get("torch")
    if torch is None:
        return cloudpickle.CloudPickler.dispatch_table
    return collections.ChainMap({torch.Tensor: _reduce_tensor}, cloudpickle.CloudPickler.dispatch_table)


class _RefIds:
    """Pickler mixin: ObjectRefs become indices into ``refs`` (the call's
    dependencies), each ref once however often it appears."""

    def _init_refs(self, refs):
        self._refs = refs
        self._ref_index = {}

    def persistent_id(self, obj):
        if self._refs is None or type(obj) is not ObjectRef:
            return None
        key = obj.binary()
        index = self._ref_index.get(key)
        if index is None:
            index = self._ref_index[key] = len(self._refs)
            self._refs.append(obj)
        return index


class _Pickler(_RefIds, cloudpickle.CloudPickler):
    def __init__(self, file, buffers, refs=None):
        # The C pickler reads dispatch_table once, in __init__: set it first.
        self.dispatch_table = _dispatch_table()
        super().__init__(file, protocol=PROTOCOL, buffer_callback=buffers.append)
        self._init_refs(refs)


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
    return t is ObjectRef or _scalar_or_array(t)


class _ArrayPickler(pickle.Pickler):
    """The C pickler with the tensor reducer only: for values that passed
    _is_plain_with_arrays (no code, classes or ObjectRefs inside)."""

    def __init__(self, file, buffers):
        torch = sys.modules.get("torch")
        if torch is not None:
            self.dispatch_table = {torch.Tensor: _reduce_tensor}
        super().__init__(file, protocol=PROTOCOL, buffer_callback=buffers.append)


class _ArgPickler(_RefIds, _ArrayPickler):
    """_ArrayPickler that also turns ObjectRefs into dependencies: for
    arguments that passed _is_plain with _scalar_array_or_ref leaves."""

    def __init__(self, file, buffers, refs):
        super().__init__(file, buffers)
        self._init_refs(refs)


def _dumps_with_arrays(value):
    buffers = []
    f = io.BytesIO()
    _ArrayPickler(f, buffers).dump(value)
    return f.getbuffer(), _raw(buffers)


def _raw(buffers):
    return [b.raw() for b in buffers]


def dumps(value):
    """-> (data, buffers) for a value."""
    if _is_plain(value):
        return pickle.dumps(value, protocol=PROTOCOL), []
    if _is_plain_with_arrays(value):
        return _dumps_with_arrays(value)
    buffers = []
    f = io.BytesIO()
    _Pickler(f, buffers).dump(value)
    return f.getbuffer(), _raw(buffers)


def dumps_args(args, kwargs):
    """-> (data, buffers, refs): ObjectRefs anywhere in the arguments become
    dependencies, resolved to values before the call."""
    if _is_plain(args) and _is_plain(kwargs):
        return pickle.dumps((args, kwargs), protocol=PROTOCOL), [], []
    buffers, refs = [], []
    f = io.BytesIO()
    if _is_plain(args, 0, _scalar_array_or_ref) and _is_plain(kwargs, 0, _scalar_array_or_ref):
        _ArgPickler(f, buffers, refs).dump((args, kwargs))  # no cloudpickle needed
    else:
        _Pickler(f, buffers, refs).dump((args, kwargs))
    return f.getbuffer(), _raw(buffers), refs


def loads(data, buffers):
    return pickle.loads(data, buffers=buffers)


class _ArgUnpickler(pickle.Unpickler):
    def __init__(self, data, buffers, values):
        super().__init__(io.BytesIO(data), buffers=buffers)
        self._values = values

    def persistent_load(self, pid):
        return self._values[pid]


def loads_args(data, buffers, values):
    """Inverse of dumps_args; `values` are the resolved dependencies."""
    if not values:
        return pickle.loads(data, buffers=buffers)
    return _ArgUnpickler(data, buffers, values).load()


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
        self.dispatch_table = _dispatch_table()
        super().__init__(file, protocol=PROTOCOL, buffer_callback=buffers.append)
        self._init_tensors(tensors)


class _PlainRdtPickler(_TensorIds, pickle.Pickler):
    """The C pickler alone, for values that passed _is_plain_with_arrays."""

    def __init__(self, file, buffers, tensors):
        super().__init__(file, protocol=PROTOCOL, buffer_callback=buffers.append)
        self._init_tensors(tensors)


def dumps_rdt(value):
    """-> (data, buffers, tensors): the skeleton and the tensors found in
    ``value`` (nested anywhere picklable). No tensor found: tensors == []."""
    if torch_module() is None:
        data, buffers = dumps(value)
        return data, buffers, []
    buffers, tensors = [], []
    f = io.BytesIO()
    pickler = _PlainRdtPickler if _is_plain_with_arrays(value) else _RdtPickler
    pickler(f, buffers, tensors).dump(value)
    return f.getbuffer(), _raw(buffers), tensors


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
    return _RdtUnpickler(data, buffers, tensors).load()
