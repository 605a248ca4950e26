"""The rest of Ray's RDT API: enable_tensor_transport, ObjectRef
.tensor_transport(), get_collective_groups(actors, backend),
destroy_all_collective_groups(), unnamed groups, get_actor(name), and the
"Invalid tensor transport" error."""
import uuid

import pytest

TIMEOUT = 60


@pytest.fixture(scope="module")
def ferry(ferry_module_session):
    return ferry_module_session


@pytest.fixture(scope="module")
def aa():
    import async_actors
    return async_actors


def test_options_tensor_transport_on_an_undecorated_method_needs_enable_tensor_transport(
        ferry, aa):
    plain = aa.Plain.remote()
    with pytest.raises(ValueError, match="enable_tensor_transport=False"):
        plain.make.options(tensor_transport="nixl")
    plain.make.options(tensor_transport="object_store")  # the default transport is always fine
    enabled = aa.Plain.options(enable_tensor_transport=True).remote()
    ref = enabled.make.options(tensor_transport="nixl").remote(3)
    assert ref.tensor_transport() == "NIXL"
    assert ferry.get(ref, timeout=TIMEOUT).tolist() == [1.0, 1.0, 1.0]


def test_a_class_with_a_decorated_method_enables_tensor_transport_for_all(ferry, aa):
    d = aa.Decorated.remote()
    assert d.make.remote(2).tensor_transport() == "NIXL"
    ref = d.make_plain.options(tensor_transport="shm").remote(2)
    assert ref.tensor_transport() == "SHM"
    assert ferry.get(d.total.remote(ref), timeout=TIMEOUT) == 2.0
    # Decorated methods work even where the option is off.
    off = aa.Decorated.options(enable_tensor_transport=False).remote()
    assert ferry.get(off.make.remote(2), timeout=TIMEOUT).tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="enable_tensor_transport"):
        off.make_plain.options(tensor_transport="nixl")
    with pytest.raises(ValueError, match="enable_tensor_transport must be a bool"):
        aa.Plain.options(enable_tensor_transport="yes")


def test_tensor_transport_of_refs(ferry, aa):
    import torch
    plain = aa.Plain.remote()
    assert plain.make.remote(1).tensor_transport() is None
    assert ferry.put(1).tensor_transport() is None
    assert ferry.put(torch.ones(2), _tensor_transport="nixl").tensor_transport() == "NIXL"
    # A ref keeps its transport when it travels inside a value.
    d = aa.Decorated.remote()
    [back] = ferry.get(ferry.put([d.make.remote(2)]), timeout=TIMEOUT)
    assert back.tensor_transport() == "NIXL"


def test_an_unknown_transport_is_an_invalid_tensor_transport(ferry):
    with pytest.raises(ValueError, match="Invalid tensor transport") as ei:
        @ferry.method(tensor_transport="invalid")
        def echo(self, data):
            return data
    for name in ("object_store", "nixl", "gloo", "shm", "auto"):
        assert name in str(ei.value)


def test_unnamed_groups_get_distinct_names_and_can_coexist(ferry, aa):
    from ferry.experimental.collective import (create_collective_group,
                                               destroy_all_collective_groups,
                                               get_collective_groups)
    a, b, c = (aa.Decorated.remote() for _ in range(3))
    g1 = create_collective_group([a, b], backend="gloo")
    g2 = create_collective_group([b, c], backend="torch_gloo")
    assert g1.name != g2.name
    assert {g.name for g in get_collective_groups()} >= {g1.name, g2.name}
    assert [g.name for g in get_collective_groups([a])] == [g1.name]
    assert [g.name for g in get_collective_groups([b, c])] == [g2.name]
    assert {g.name for g in get_collective_groups([b], backend="gloo")} == {g1.name, g2.name}
    assert get_collective_groups([a, c]) == []
    with pytest.raises(ValueError, match="valid"):
        get_collective_groups(backend="carrier-pigeon")
    destroy_all_collective_groups()
    assert get_collective_groups() == []


def test_get_actor_returns_a_working_handle_by_name(ferry, aa):
    name = f"adder-{uuid.uuid4().hex[:8]}"
    aa.Decorated.options(name=name).remote()
    h = ferry.get_actor(name)
    ref = h.make.remote(4)
    assert ref.tensor_transport() == "NIXL", "the method table came with the handle"
    assert ferry.get(h.total.remote(ref), timeout=TIMEOUT) == 4.0
    with pytest.raises(ValueError, match="Failed to look up actor with name 'no-such-actor'"):
        ferry.get_actor("no-such-actor")
    ferry.kill(h)
    with pytest.raises(ValueError, match="Failed to look up actor"):
        ferry.get_actor(name)
    with pytest.raises(ValueError):
        ferry.get_actor("")
