"""A Gloo group's two ranks on one host: the receiver reads the bytes once
from the producer's memory (the shm export the producer adds), as NCCL moves
bytes inside a node, without a send; the group is still required, and a
failure still destroys it. FERRY_GLOO_SAME_HOST_PATH=tcp, read when a group
is created, keeps Gloo's TCP connection (the wire failures of
test_rdt_failures.py run that way)."""
import os

import pytest
import torch

GET_TIMEOUT = 60
NUMEL = 1 << 20  # 4 MiB of float32: past the inline limit


@pytest.fixture
def rdt():
    import rdt_test_actors
    return rdt_test_actors


def _records(ferry, actor, ref):
    return [r for r in ferry.get(actor.transfer_log.remote(), timeout=GET_TIMEOUT)
            if r["object_id"] == ref.hex()]


def _expected_sum(rdt, seed):
    return float(rdt.make_tensor("float32", (NUMEL,), seed).double().sum())


def _pair(rdt, name="pair"):
    from ferry.experimental.collective import create_collective_group
    a, b = rdt.Producer.remote(), rdt.Producer.remote()
    create_collective_group([a, b], backend="gloo", name=name)
    return a, b


def test_a_same_host_pair_reads_the_producers_memory_without_a_send(ferry_session, rdt):
    ferry = ferry_session
    a, b = _pair(rdt)
    ref = a.make_recorded.remote(NUMEL, 5)
    # An in-place change before the transfer arrives, as over the wire.
    changed = ferry.get(a.add_one_in_place.remote(ref), timeout=GET_TIMEOUT)
    assert changed == pytest.approx(_expected_sum(rdt, 5) + NUMEL)
    with pytest.warns(UserWarning, match="RDT objects are mutable"):
        total = ferry.get(b.sum.remote(ref), timeout=GET_TIMEOUT)
    assert total == pytest.approx(changed)
    [received] = _records(ferry, b, ref)
    assert (received["transport"], received["direction"], received["bytes"], received["error"]) == \
        ("shm", "recv", NUMEL * 4, None)
    assert "'gloo' group's two ranks share this host" in received["reason"]
    assert _records(ferry, a, ref) == []  # the producer took no part


def test_the_tcp_setting_keeps_gloos_connection(monkeypatch, rdt):
    monkeypatch.setenv("FERRY_GLOO_SAME_HOST_PATH", "tcp")
    from conftest import fresh_runtime
    ferry = fresh_runtime()
    try:
        a, b = _pair(rdt)
        ref = a.make_recorded.remote(NUMEL, 6)
        assert ferry.get(b.sum.remote(ref), timeout=GET_TIMEOUT) == \
            pytest.approx(_expected_sum(rdt, 6))
        [received] = _records(ferry, b, ref)
        [sent] = _records(ferry, a, ref)
    finally:
        ferry.shutdown()
    assert (received["transport"], received["direction"], received["reason"]) == \
        ("gloo", "recv", "")
    assert (sent["transport"], sent["direction"]) == ("gloo", "send")


def test_a_bad_setting_fails_group_creation_naming_the_valid_values(monkeypatch, rdt):
    monkeypatch.setenv("FERRY_GLOO_SAME_HOST_PATH", "pigeon")
    from conftest import fresh_runtime
    ferry = fresh_runtime()
    try:
        with pytest.raises(ValueError, match="FERRY_GLOO_SAME_HOST_PATH is 'pigeon'; "
                                             "valid values: shm, tcp"):
            _pair(rdt)
    finally:
        ferry.shutdown()


def test_a_failed_read_is_a_transport_error_that_destroys_the_group(monkeypatch, rdt):
    """The two-sided rule holds on the same-host path: the receiver's failed
    read (an injected fault; the receiver lives) fails the task with a
    TransportError and destroys the group, at the owner too."""
    from conftest import fresh_runtime
    ferry = fresh_runtime()
    try:
        from ferry.experimental.collective import create_collective_group, get_collective_groups
        a = rdt.Producer.remote()
        os.environ["FERRY_FAULT"] = "transfer.pull:error"  # only the consumer starts with it
        try:
            b = rdt.Producer.remote()
            ferry.get(b.ping.remote(), timeout=GET_TIMEOUT)
        finally:
            del os.environ["FERRY_FAULT"]
        create_collective_group([a, b], backend="gloo", name="doomed")
        ref = a.make_recorded.remote(NUMEL, 7)
        with pytest.raises(ferry.exceptions.TransportError, match="doomed"):
            ferry.get(b.sum.remote(ref), timeout=GET_TIMEOUT)
        assert "doomed" not in [g.name for g in get_collective_groups()]
        assert ferry.get(b.ping.remote(), timeout=GET_TIMEOUT) == "pong"
    finally:
        ferry.shutdown()


def test_many_tensors_in_one_object_arrive_byte_exact(ferry_session):
    """Thousands of tensors in one object: one read of each, in order."""
    import ferry
    from ferry.experimental.collective import create_collective_group

    @ferry.remote
    class Stage:
        @ferry.method(tensor_transport="gloo")
        def produce(self, n, size):
            return [torch.full((size,), float(i)) for i in range(n)]

        def check(self, tensors):
            return all(bool((t == float(i)).all()) for i, t in enumerate(tensors)), len(tensors)

    a, b = Stage.remote(), Stage.remote()
    create_collective_group([a, b], backend="gloo", name="many")
    assert ferry.get(b.check.remote(a.produce.remote(3000, 100)), timeout=GET_TIMEOUT) == \
        (True, 3000)
