"""Plain CPU tensors and numpy arrays as call arguments and return values.

Arguments made only of scalars, tensors and arrays take the C pickler with
ferry's tensor reducer (no cloudpickle); anything else takes cloudpickle. Both
paths must give back equal values of the same dtype and shape, with tensor
bytes out of band."""
import numpy as np
import pytest
import torch

from conftest import GET_TIMEOUT
from ferry._private import serialization

pytestmark = pytest.mark.usefixtures("ferry_module_session")

_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int8,
           torch.uint8, torch.int16, torch.int32, torch.int64, torch.bool, torch.complex64,
           torch.complex128]


def _tensors():
    out = [torch.arange(6).to(dt).reshape(2, 3) for dt in _DTYPES]
    out += [
        torch.arange(12.0).reshape(3, 4).t(),  # non-contiguous
        torch.tensor(2.5),                     # 0-dim
        torch.zeros(0, 3),                     # empty
        torch.ones(3, requires_grad=True),
        torch.tensor([1 + 2j, 3 - 1j]).conj(),  # a conjugate view
    ]
    return out


def _same(a, b):
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return (type(b) is torch.Tensor and a.dtype == b.dtype and a.shape == b.shape
            and a.requires_grad == b.requires_grad
            and torch.equal(a.detach().resolve_conj(), b.detach().resolve_conj()))


def _round_trip(value):
    data, buffers, contained = serialization.dumps(value)
    assert contained == []
    return serialization.loads(data, [memoryview(bytearray(b)) for b in buffers]), buffers


@pytest.mark.parametrize("t", _tensors(), ids=lambda t: f"{t.dtype}-{tuple(t.shape)}")
def test_tensor_round_trips_on_the_fast_path(t):
    assert serialization._is_plain_with_arrays([t, 1, {"k": t}])
    back, buffers = _round_trip([t, 1, {"k": t}])
    assert _same(t, back[0]) and _same(t, back[2]["k"]) and back[1] == 1
    assert buffers, "tensor bytes travel out of band"


def test_values_with_code_take_cloudpickle_and_still_carry_tensors_out_of_band():
    t = torch.arange(5.0)
    value = [t, lambda x: x + 1]
    assert not serialization._is_plain_with_arrays(value)
    back, buffers = _round_trip(value)
    assert _same(t, back[0]) and back[1](1) == 2 and buffers


def test_tensor_subclass_is_not_taken_for_a_plain_tensor():
    p = torch.nn.Parameter(torch.ones(2))
    assert not serialization._is_plain_with_arrays([p])
    back, _ = _round_trip([p])
    assert isinstance(back[0], torch.nn.Parameter) and torch.equal(back[0].data, p.data)


def test_tensors_and_arrays_as_actor_arguments_come_back_equal(actors):
    import ferry
    e = actors.Echo.remote()
    values = _tensors() + [np.arange(7, dtype=np.int16), np.ones((2, 2))]
    for v in values:
        args, kwargs = ferry.get(e.echo.remote(v, k=[v, 3]), timeout=GET_TIMEOUT)
        assert _same(v, args[0]) and _same(v, kwargs["k"][0]) and kwargs["k"][1] == 3


def test_top_level_refs_become_dependencies_once_and_nested_refs_stay_refs():
    import ferry
    r, other = ferry.put(1), ferry.put(2)
    t = torch.arange(3.0)
    for args, kwargs, fast in [((r, [r, t], {"k": other}), {"x": r}, True),
                               ((r, lambda: 0, [other]), {"x": other}, False)]:
        data, buffers, deps, contained = serialization.dumps_args(args, kwargs)
        top = [r] if fast else [r, other]  # each top-level ref once
        assert [x.binary() for x in deps] == [x.binary() for x in top]
        nested = [r, other] if fast else [other]
        assert [x.binary() for x in contained] == [x.binary() for x in nested]
        back_args, back_kwargs = serialization.loads_args(data, buffers, ["R", "O"])
        assert back_args[0] == "R" and back_kwargs["x"] == ("R" if fast else "O")
        if fast:
            assert back_args[1][0] == r and _same(t, back_args[1][1]) and back_args[2]["k"] == other
        else:
            assert back_args[2][0] == other


