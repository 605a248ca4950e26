"""Tensor transports of the user's own, registered at run time with
ferry.experimental.register_tensor_transport and used by name like a
built-in transport: the TCP-socket example end to end, freeing, failures in
the middle of a transfer, timeouts, export failures, and bad registrations.
(The C++ side: examples/cpp/custom_transport.cc, run by ctest.)"""
import subprocess
import sys

import pytest
import torch

from conftest import wait_for

TIMEOUT = 60


@pytest.fixture(scope="module")
def ct():
    import custom_transports
    return custom_transports


@pytest.fixture(scope="module")
def ferry(ct, ferry_module_session):
    from ferry.experimental import register_tensor_transport
    register_tensor_transport("tracked_tcp", ["cpu"], ct.TrackedTcp)  # Ray's argument order
    register_tensor_transport("fails_mid_pull", ct.FailsMidPull, ["cpu"])  # the order
    register_tensor_transport("never_arrives", ["cpu"], ct.NeverArrives)
    register_tensor_transport("export_fails", ["cpu"], ct.ExportFails)
    register_tensor_transport("drops_a_descriptor", ["cpu"], ct.DropsADescriptor)
    register_tensor_transport("tcp2", ["cpu"], ct.TcpTwoSidedTransport)
    register_tensor_transport("tcp2_breaks", ["cpu"], ct.BreaksFirstSend)
    register_tensor_transport("tcp2_join_fails", ["cpu"], ct.JoinFails)
    return ferry_module_session


def _pair(ct):
    opts = {"enable_tensor_transport": True}
    return ct.Node.options(**opts).remote(), ct.Node.options(**opts).remote()


@pytest.mark.parametrize("script", ["tcp_example.py", "tcp_two_sided_example.py"])
def test_the_tcp_examples_run_as_scripts(ct, script):
    proc = subprocess.run([sys.executable, script], cwd=ct.EXAMPLE_DIR, capture_output=True,
                          text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["1000000.0", "torch.Size([1000,", "1000])"]


def test_a_registered_transport_moves_tensors_like_a_built_in_one(ferry, ct):
    producer, consumer = _pair(ct)
    ref = producer.make.options(tensor_transport="tracked_tcp").remote(100_000, 3)
    assert ref.tensor_transport() == "TRACKED_TCP"
    assert ferry.get(consumer.total.remote(ref), timeout=TIMEOUT) == 300_000.0
    # several in one call, and the driver pulls too
    refs = [producer.make.options(tensor_transport="tracked_tcp").remote(10, i) for i in range(3)]
    assert ferry.get(consumer.totals.remote(refs), timeout=TIMEOUT) == [0.0, 10.0, 20.0]
    got = ferry.get(ref, timeout=TIMEOUT)
    assert torch.equal(got, torch.full((100_000,), 3.0))
    # the consumer's transfer log names the transport that moved the bytes
    log = ferry.get(consumer.transfer_log.remote(), timeout=TIMEOUT)
    assert any(e["transport"] == "tracked_tcp" and e["bytes"] == 400_000 and e["error"] is None
               for e in log), log


def test_decorated_methods_and_remote_functions_take_the_transport(ferry, ct):
    @ferry.remote
    class Maker:
        @ferry.method(tensor_transport="tracked_tcp")
        def make(self, n):
            return torch.arange(n, dtype=torch.float32)

    maker = Maker.remote()
    ref = maker.make.remote(10)
    assert ref.tensor_transport() == "TRACKED_TCP"
    # a remote function (a pooled worker) as the consumer, top level and nested
    assert ferry.get(ct.total.remote(ref), timeout=TIMEOUT) == 45.0
    _, consumer = _pair(ct)
    assert ferry.get(consumer.totals.remote([ref]), timeout=TIMEOUT) == [45.0]


def test_put_keeps_tensors_in_the_driver_with_a_registered_transport(ferry, ct):
    _, consumer = _pair(ct)
    before = ct.exported_buffers()
    ref = ferry.put(torch.full((1000,), 2.0), _tensor_transport="tracked_tcp")
    assert ct.exported_buffers() == before + 1  # exported here, by this process's transport
    assert ferry.get(consumer.total.remote(ref), timeout=TIMEOUT) == 2000.0
    assert ferry.get(consumer.totals.remote([ref]), timeout=TIMEOUT) == [2000.0]
    del ref
    assert wait_for(lambda: ct.exported_buffers() == before, TIMEOUT)
    # nothing left to serve: the example transport stops listening
    assert wait_for(lambda: not ct.listening(), TIMEOUT)


def test_freeing_the_object_releases_its_export_in_the_producer(ferry, ct):
    producer, consumer = _pair(ct)
    ref = producer.make.options(tensor_transport="tracked_tcp").remote(1000, 1)
    assert ferry.get(consumer.total.remote(ref), timeout=TIMEOUT) == 1000.0
    assert ferry.get(producer.exported_buffers.remote(), timeout=TIMEOUT) == 1
    del ref
    assert wait_for(lambda: ferry.get(producer.exported_buffers.remote(), timeout=TIMEOUT) == 0,
                    TIMEOUT)
    assert wait_for(
        lambda: ferry.get(producer.stats.remote(), timeout=TIMEOUT)["num_objects"] == 0, TIMEOUT)


def test_a_transport_raising_mid_transfer_fails_the_transfer_and_the_object_survives(ferry, ct):
    producer, consumer = _pair(ct)
    ref = producer.make.options(tensor_transport="fails_mid_pull").remote(100_000, 2)
    with pytest.raises(ferry.exceptions.TransportError,
                       match="fails_mid_pull.*ConnectionResetError: the link dropped after "
                             "200000 of 400000 bytes"):
        ferry.get(consumer.total.remote(ref), timeout=TIMEOUT)
    # the consumer and the producer carry on; the object moves on the next try
    assert ferry.get(consumer.total.remote(ref), timeout=TIMEOUT) == 200_000.0
    log = ferry.get(consumer.transfer_log.remote(), timeout=TIMEOUT)
    assert [e["error"] is None for e in log if e["transport"] == "fails_mid_pull"] == [False, True]
    # the driver's own pulls: the same error, then the value
    with pytest.raises(ferry.exceptions.TransportError, match="the link dropped"):
        ferry.get(ref, timeout=TIMEOUT)
    assert float(ferry.get(ref, timeout=TIMEOUT).sum()) == 200_000.0


def test_a_transport_that_times_out_raises_get_timeout_error(ferry, ct):
    producer, _ = _pair(ct)
    ref = producer.make.options(tensor_transport="never_arrives").remote(10, 1)
    ferry.wait([ref], timeout=TIMEOUT)
    with pytest.raises(ferry.exceptions.GetTimeoutError, match="nothing arrived"):
        ferry.get(ref, timeout=0.5)


def test_a_failing_export_fails_the_producing_call(ferry, ct):
    producer, consumer = _pair(ct)
    ref = producer.make.options(tensor_transport="export_fails").remote(10, 1)
    with pytest.raises(ferry.exceptions.TransportError, match="no route to the fabric"):
        ferry.get(ref, timeout=TIMEOUT)
    with pytest.raises(ferry.exceptions.TransportError, match="no route to the fabric"):
        ferry.get(consumer.total.remote(ref), timeout=TIMEOUT)
    # the producer is fine
    assert ferry.get(producer.total.remote(torch.ones(3)), timeout=TIMEOUT) == 3.0


def test_an_export_without_a_descriptor_per_buffer_fails_and_is_released(ferry, ct):
    producer, _ = _pair(ct)
    ref = producer.make.options(tensor_transport="drops_a_descriptor").remote(10, 1)
    with pytest.raises(ferry.exceptions.TransportError,
                       match="drops_a_descriptor.*returned 0 descriptors for 1 buffers"):
        ferry.get(ref, timeout=TIMEOUT)
    assert ferry.get(producer.exported_buffers.remote(), timeout=TIMEOUT) == 0


def test_an_actor_created_before_the_registration_says_so(ferry, ct):
    from ferry.experimental import register_tensor_transport
    early = ct.Node.options(enable_tensor_transport=True).remote()
    ferry.get(early.stats.remote(), timeout=TIMEOUT)  # created and running
    register_tensor_transport("late_tcp", ["cpu"], ct.TrackedTcp)
    producer = ct.Node.options(enable_tensor_transport=True).remote()
    ref = producer.make.options(tensor_transport="late_tcp").remote(10, 1)
    with pytest.raises(ferry.exceptions.CollectiveGroupError,
                       match="tensor transport 'late_tcp' is not registered in this process"):
        ferry.get(early.total.remote(ref), timeout=TIMEOUT)
    assert ferry.get(ref, timeout=TIMEOUT).sum() == 10.0


def test_a_device_the_transport_does_not_list_is_refused(ferry, ct):
    @ferry.remote
    class Meta:
        @ferry.method(tensor_transport="tracked_tcp")
        def make(self):
            return torch.empty(4, device="meta")

    with pytest.raises(ValueError, match="tensor_transport='tracked_tcp' moves CPU tensors only"):
        ferry.get(Meta.remote().make.remote(), timeout=TIMEOUT)


def test_bad_registrations_raise_value_error(ferry, ct):
    from ferry.experimental import OneSidedTensorTransport, register_tensor_transport

    class NotATransport:
        pass

    with pytest.raises(ValueError, match="subclass of ferry.experimental.OneSidedTensorTransport"):
        register_tensor_transport("x", ["cpu"], NotATransport)
    with pytest.raises(ValueError, match="devices must be a list"):
        register_tensor_transport("x", "cpu", ct.TrackedTcp)
    with pytest.raises(ValueError, match="built into ferry"):
        register_tensor_transport("nixl", ["cpu"], ct.TrackedTcp)
    with pytest.raises(ValueError, match="lower-case letters"):
        register_tensor_transport("my tcp", ["cpu"], ct.TrackedTcp)
    with pytest.raises(ValueError, match="already registered"):
        register_tensor_transport("tracked_tcp", ["cpu", "cuda"], ct.TrackedTcp)
    with pytest.raises(TypeError):
        OneSidedTensorTransport()  # abstract
    # an unknown name still lists the valid ones, the registered included
    with pytest.raises(ValueError, match="Invalid tensor transport.*tracked_tcp"):
        ct.Node.options(enable_tensor_transport=True).remote().make.options(
            tensor_transport="pigeon")


# --- two-sided ---------------------------------------------------------------

N = 1 << 20  # 4 MiB of float32


def test_a_two_sided_transport_carries_objects_in_its_own_groups(ferry, ct):
    from ferry.experimental.collective import create_collective_group, get_collective_groups
    producer, consumer = _pair(ct)
    group = create_collective_group([producer, consumer], backend="tcp2")
    assert group.backend == "tcp2" and group.name.startswith("tcp2-")
    assert [g.name for g in get_collective_groups([producer, consumer], backend="tcp2")] == [
        group.name]
    refs = [producer.make.options(tensor_transport="tcp2").remote(n, 2) for n in (N, 3, 0)]
    assert refs[0].tensor_transport() == "TCP2"
    assert ferry.get([consumer.total.remote(r) for r in refs], timeout=TIMEOUT) == [
        2.0 * N, 6.0, 0.0]
    # a small object moves over the user's transport too (no same-host shortcut)
    log = ferry.get(consumer.transfer_log.remote(), timeout=TIMEOUT)
    assert sorted(e["bytes"] for e in log if e["transport"] == "tcp2") == [0, 12, 4 * N], log
    # the driver is in no group: it fetches through the object store
    got = ferry.get(refs[1], _tensor_transport="object_store", timeout=TIMEOUT)
    assert got.tolist() == [2.0, 2.0, 2.0]


def test_a_two_sided_object_without_its_group_is_refused_at_submit(ferry, ct):
    producer, _ = _pair(ct)
    with pytest.raises(ValueError, match="create_collective_group"):
        producer.make.options(tensor_transport="tcp2").remote(3, 1)


def test_a_two_sided_transport_failing_mid_send_destroys_the_group_until_recreated(ferry, ct):
    from ferry.experimental.collective import create_collective_group, get_collective_groups
    producer, consumer = _pair(ct)
    create_collective_group([producer, consumer], backend="tcp2_breaks", name="breaks")
    ref = producer.make.options(tensor_transport="tcp2_breaks").remote(N, 1)
    with pytest.raises(ferry.exceptions.TransportError, match="tcp2_breaks"):
        ferry.get(consumer.total.remote(ref), timeout=TIMEOUT)
    assert wait_for(lambda: not get_collective_groups([producer, consumer]), TIMEOUT)
    # the actors live on; the group's name can be used again, and then it works
    create_collective_group([producer, consumer], backend="tcp2_breaks", name="breaks")
    ref = producer.make.options(tensor_transport="tcp2_breaks").remote(N, 1)
    assert ferry.get(consumer.total.remote(ref), timeout=TIMEOUT) == float(N)


def test_a_two_sided_transport_failing_to_join_fails_group_creation(ferry, ct):
    from ferry.experimental.collective import create_collective_group, get_collective_groups
    producer, consumer = _pair(ct)
    with pytest.raises(Exception, match="found no fabric") as ei:
        create_collective_group([producer, consumer], backend="tcp2_join_fails")
    assert isinstance(ei.value, ferry.exceptions.FerryError), type(ei.value)
    assert not get_collective_groups([producer, consumer])
    assert ferry.get(consumer.total.remote(torch.ones(2)), timeout=TIMEOUT) == 2.0
