"""Data across hosts: the guide's Gloo and NIXL examples with the producer and
the consumer on different hosts, and 64 MiB object-store values moved
between a driver and actors on other hosts.

Drivers run on h1 (the head's host) unless a test says otherwise; actors are
pinned with a hard NodeAffinitySchedulingStrategy, and each reports where it
ran (FERRY_NODE_ID, hostname, pid), which the tests check against the host
they asked for."""
import pytest

from .snippets import driver

pytestmark = pytest.mark.cluster


def _assert_on(where, host, node_ids):
    assert where["node_id"] == node_ids[host], (where, host, node_ids)
    assert where["hostname"] == f"ferry-{host}", (where, host)


def _close(a, b, rel=1e-4, abs_=1e-2):
    return abs(a - b) <= max(abs_, rel * max(abs(a), abs(b)))


def test_gloo_guide_example_between_hosts(cluster):
    out = cluster.driver_json("h1", driver("""
        import torch
        import ferry as ray
        from ferry.experimental.collective import create_collective_group
        from driver_lib import GET_TIMEOUT_S, connect, emit, node_id, pinned

        connect()


        @ray.remote
        class MyActor:
            @ray.method(tensor_transport="gloo")
            def random_tensor(self):
                return torch.randn(1000, 1000)

            @ray.method(tensor_transport="gloo")
            def random_tensor_dict(self):
                return {"tensor1": torch.randn(1000, 1000), "tensor2": torch.randn(1000, 1000)}

            def sum(self, tensor: torch.Tensor):
                return torch.sum(tensor)

            def sum_dict(self, tensor_dict: dict):
                return torch.sum(tensor_dict["tensor1"]) + torch.sum(tensor_dict["tensor2"])

            where = where_method


        sender, receiver = pinned(MyActor, "h2").remote(), pinned(MyActor, "h3").remote()
        group = create_collective_group([sender, receiver], backend="torch_gloo")

        # The guide's example: the tensor stays with the sender until the
        # receiver's task needs it, then moves over Gloo from h2 to h3.
        tensor = sender.random_tensor.remote()
        result = receiver.sum.remote(tensor)
        remote_sum, local_sum = ray.get([result, sender.sum.remote(tensor)], timeout=GET_TIMEOUT_S)

        tensor_dict = sender.random_tensor_dict.remote()
        dict_sums = ray.get([receiver.sum_dict.remote(tensor_dict),
                             sender.sum_dict.remote(tensor_dict)], timeout=GET_TIMEOUT_S)
        # The driver on h1 is not in the group: it fetches through the object store.
        fetched = ray.get(tensor, _tensor_transport="object_store", timeout=GET_TIMEOUT_S)

        emit({"remote_sum": float(remote_sum), "local_sum": float(local_sum),
              "dict_sums": [float(s) for s in dict_sums],
              "fetched_sum": float(torch.sum(fetched)), "fetched_shape": list(fetched.shape),
              "sender": ray.get(sender.where.remote(), timeout=GET_TIMEOUT_S),
              "receiver": ray.get(receiver.where.remote(), timeout=GET_TIMEOUT_S),
              "node_ids": {h: node_id(h) for h in ("h1", "h2", "h3")}})
        """))
    _assert_on(out["sender"], "h2", out["node_ids"])
    _assert_on(out["receiver"], "h3", out["node_ids"])
    assert out["sender"]["node_id"] != out["receiver"]["node_id"]
    assert out["local_sum"] != 0.0
    assert _close(out["remote_sum"], out["local_sum"]), out
    assert _close(*out["dict_sums"]), out
    assert out["fetched_shape"] == [1000, 1000]
    assert _close(out["fetched_sum"], out["local_sum"]), out


def test_gloo_reads_memory_on_one_host_and_uses_the_wire_between_hosts(cluster):
    """One group over h2, h2 and h3: the transfer between the two h2 members
    is a read of the producer's memory (path shm), the one to h3 goes over
    Gloo (path gloo), and both arrive whole."""
    out = cluster.driver_json("h1", driver("""
        import torch
        import ferry as ray
        from ferry.experimental.collective import create_collective_group
        from driver_lib import GET_TIMEOUT_S, connect, emit, pinned

        connect()


        @ray.remote
        class Stage:
            @ray.method(tensor_transport="gloo")
            def produce(self):
                return torch.arange(1 << 20, dtype=torch.float32)  # 4 MiB: past the inline path

            def total(self, t):
                return float(t.double().sum())

            def paths(self):
                from ferry.experimental import transfer_log
                return [(r["transport"], r["reason"], r["error"]) for r in transfer_log()]


        sender, near, far = (pinned(Stage, h).remote() for h in ("h2", "h2", "h3"))
        create_collective_group([sender, near, far], backend="gloo")
        ref = sender.produce.remote()
        totals = ray.get([near.total.remote(ref), far.total.remote(ref)], timeout=GET_TIMEOUT_S)
        emit({"totals": totals,
              "near": ray.get(near.paths.remote(), timeout=GET_TIMEOUT_S),
              "far": ray.get(far.paths.remote(), timeout=GET_TIMEOUT_S)})
        """))
    want = float(sum(range(1 << 20)))
    assert out["totals"] == [want, want], out
    [(near_path, near_reason, near_error)] = out["near"]
    assert (near_path, near_error) == ("shm", None) and "share this host" in near_reason, out
    assert out["far"] == [["gloo", "", None]], out


def test_nixl_guide_example_between_hosts(cluster):
    out = cluster.driver_json("h1", driver("""
        import torch
        import ferry as ray
        from driver_lib import GET_TIMEOUT_S, connect, emit, node_id, pinned

        connect()


        @ray.remote
        class MyActor:
            @ray.method(tensor_transport="nixl")
            def random_tensor(self):
                return torch.randn(1000, 1000)

            def sum(self, tensor: torch.Tensor):
                return torch.sum(tensor)

            def produce(self, tensors):
                refs = []
                for t in tensors:
                    refs.append(ray.put(t, _tensor_transport="nixl"))
                return refs

            def consume_with_nixl(self, refs):
                tensors = [ray.get(ref) for ref in refs]
                total = 0
                for t in tensors:
                    assert t.device.type == "cpu"
                    total += t.sum().item()
                return total

            where = where_method


        # No collective group: the receiver on h3 pulls from the sender on h2.
        sender, receiver = pinned(MyActor, "h2").remote(), pinned(MyActor, "h3").remote()
        tensor = sender.random_tensor.remote()
        remote_sum, local_sum = ray.get([receiver.sum.remote(tensor), sender.sum.remote(tensor)],
                                        timeout=GET_TIMEOUT_S)
        # ray.get in the driver on h1 pulls with NIXL too.
        pulled = ray.get(tensor, timeout=GET_TIMEOUT_S)

        tensor1, tensor2 = torch.randn(1000, 1000), torch.randn(1000, 1000)
        refs = sender.produce.remote([tensor1, tensor2])
        consumed = ray.get(receiver.consume_with_nixl.remote(refs), timeout=GET_TIMEOUT_S)

        emit({"remote_sum": float(remote_sum), "local_sum": float(local_sum),
              "pulled_sum": float(torch.sum(pulled)), "pulled_shape": list(pulled.shape),
              "consumed": consumed, "expected": tensor1.sum().item() + tensor2.sum().item(),
              "sender": ray.get(sender.where.remote(), timeout=GET_TIMEOUT_S),
              "receiver": ray.get(receiver.where.remote(), timeout=GET_TIMEOUT_S),
              "node_ids": {h: node_id(h) for h in ("h1", "h2", "h3")}})
        """))
    _assert_on(out["sender"], "h2", out["node_ids"])
    _assert_on(out["receiver"], "h3", out["node_ids"])
    assert out["sender"]["node_id"] != out["receiver"]["node_id"]
    assert out["local_sum"] != 0.0
    assert _close(out["remote_sum"], out["local_sum"]), out
    assert out["pulled_shape"] == [1000, 1000]
    assert _close(out["pulled_sum"], out["local_sum"]), out
    assert _close(out["consumed"], out["expected"]), out


def test_auto_picks_the_network_across_hosts_and_shm_refuses_them(cluster):
    out = cluster.driver_json("h1", driver("""
        import torch
        import ferry
        from ferry.experimental import transfer_log
        from driver_lib import GET_TIMEOUT_S, connect, emit, error, pinned

        connect()


        @ferry.remote
        class Peer:
            @ferry.method(tensor_transport="auto")
            def make_auto(self):
                return torch.full((1 << 20,), 2.0)

            @ferry.method(tensor_transport="shm")
            def make_shm(self):
                return torch.full((1 << 20,), 3.0)

            def total(self, t):
                return float(t.sum())

            def log(self):
                return [(r["transport"], r["reason"], r["error"]) for r in transfer_log()]


        producer = pinned(Peer, "h2").remote()
        near, far = pinned(Peer, "h2").remote(), pinned(Peer, "h3").remote()
        auto_ref = producer.make_auto.remote()
        near_total = ferry.get(near.total.remote(auto_ref), timeout=GET_TIMEOUT_S)
        far_total = ferry.get(far.total.remote(auto_ref), timeout=GET_TIMEOUT_S)
        try:
            ferry.get(far.total.remote(producer.make_shm.remote()), timeout=GET_TIMEOUT_S)
            shm_error = None
        except Exception as e:
            shm_error = error(e)
        emit({"near": near_total, "far": far_total, "shm_error": shm_error,
              "near_log": ferry.get(near.log.remote(), timeout=GET_TIMEOUT_S),
              "far_log": ferry.get(far.log.remote(), timeout=GET_TIMEOUT_S)})
        """))
    assert out["near"] == out["far"] == 2.0 * (1 << 20)
    assert out["near_log"][0][0] == "shm" and "this host" in out["near_log"][0][1], out
    assert out["far_log"][0][0] == "nixl" and "another host" in out["far_log"][0][1], out
    assert out["shm_error"] is not None and "nixl" in out["shm_error"]["message"], out


def test_put_in_driver_is_read_by_an_actor_on_another_host(cluster):
    out = cluster.driver_json("h1", driver("""
        import ferry
        from driver_lib import GET_TIMEOUT_S, connect, emit, node_id, pinned

        connect()


        @ferry.remote
        class Reader:
            def checksum(self, arr):
                # A ref at the top level of the call arrives resolved.
                return {"digest": digest(arr), "nbytes": int(arr.nbytes)}

            where = where_method


        value = make_value(7)
        ref = ferry.put(value)
        reader = pinned(Reader, "h2").remote()
        direct = ferry.get(reader.checksum.remote(ref), timeout=GET_TIMEOUT_S)
        # A second reader on a third host: the same value, fetched again.
        other = pinned(Reader, "h3").remote()
        again = ferry.get(other.checksum.remote(ref), timeout=GET_TIMEOUT_S)
        emit({"want": digest(value), "direct": direct, "again": again,
              "reader": ferry.get(reader.where.remote(), timeout=GET_TIMEOUT_S),
              "node_ids": {h: node_id(h) for h in ("h1", "h2", "h3")}})
        """))
    _assert_on(out["reader"], "h2", out["node_ids"])
    assert out["direct"] == {"digest": out["want"], "nbytes": 64 << 20}
    assert out["again"] == {"digest": out["want"], "nbytes": 64 << 20}


def test_value_returned_by_an_actor_on_another_host_reaches_the_driver(cluster):
    out = cluster.driver_json("h1", driver("""
        import ferry
        from driver_lib import GET_TIMEOUT_S, connect, emit, node_id, pinned

        connect()


        @ferry.remote
        class Maker:
            def make(self, seed):
                value = make_value(seed)
                self.digest = digest(value)
                return value

            def made_digest(self):
                return self.digest

            where = where_method


        maker = pinned(Maker, "h3").remote()
        got = ferry.get(maker.make.remote(11), timeout=GET_TIMEOUT_S)
        emit({"nbytes": int(got.nbytes), "dtype": str(got.dtype), "got": digest(got),
              "want": digest(make_value(11)),
              "maker_digest": ferry.get(maker.made_digest.remote(), timeout=GET_TIMEOUT_S),
              "maker": ferry.get(maker.where.remote(), timeout=GET_TIMEOUT_S),
              "node_ids": {h: node_id(h) for h in ("h1", "h2", "h3")}})
        """))
    _assert_on(out["maker"], "h3", out["node_ids"])
    assert out["nbytes"] == 64 << 20 and out["dtype"] == "uint8"
    assert out["got"] == out["want"] == out["maker_digest"]


def test_driver_on_a_node_host_connects_with_auto_and_moves_values(cluster):
    """A driver on h2 (not the head's host) finds the cluster through h2's
    cluster file (address="auto", no FERRY_ADDRESS or FERRY_TOKEN), gets a
    value from an actor on h3 and hands one made there to an actor on h1."""
    out = cluster.driver_json("h2", driver("""
        import ferry
        from driver_lib import GET_TIMEOUT_S, emit, node_id, pinned

        ferry.init(address="auto")


        @ferry.remote
        class Peer:
            def make(self, seed):
                return make_value(seed, 16 * MiB)

            def checksum(self, arr):
                return digest(arr)

            where = where_method


        far, head_side = pinned(Peer, "h3").remote(), pinned(Peer, "h1").remote()
        got = ferry.get(far.make.remote(3), timeout=GET_TIMEOUT_S)
        passed = ferry.get(head_side.checksum.remote(far.make.remote(3)), timeout=GET_TIMEOUT_S)
        emit({"got": digest(got), "passed": passed, "want": digest(make_value(3, 16 * MiB)),
              "far": ferry.get(far.where.remote(), timeout=GET_TIMEOUT_S),
              "head_side": ferry.get(head_side.where.remote(), timeout=GET_TIMEOUT_S),
              "node_ids": {h: node_id(h) for h in ("h1", "h2", "h3")}})
        """), env={"FERRY_ADDRESS": None, "FERRY_TOKEN": None})
    _assert_on(out["far"], "h3", out["node_ids"])
    _assert_on(out["head_side"], "h1", out["node_ids"])
    assert out["got"] == out["passed"] == out["want"]
