"""Tensor transports of the user's own across hosts: the TCP examples
(examples/custom_transport/), registered in the driver on h1, carry tensors
from an actor on h2 to one on h3 (and, one-sided, to the driver); the
actors register them from their creation, on their own hosts (the
transport classes travel by value)."""
import pytest

from .snippets import driver

pytestmark = pytest.mark.cluster


def test_registered_transports_move_tensors_between_hosts(cluster):
    out = cluster.driver_json("h1", driver("""
        import os
        import sys

        import torch
        import ferry as ray
        import driver_lib
        from ferry.experimental import register_tensor_transport
        from ferry.experimental.collective import create_collective_group
        from driver_lib import GET_TIMEOUT_S, connect, emit, pinned

        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(driver_lib.__file__)))))
        sys.path.insert(0, os.path.join(repo, "examples", "custom_transport"))
        import cloudpickle
        import socket_io
        import tcp_transport
        import tcp_two_sided
        from tcp_transport import TcpTransport
        from tcp_two_sided import TcpTwoSidedTransport

        # The other hosts' workers cannot import the examples' modules: they
        # travel by value, as the classes of a driver's __main__ do.
        cloudpickle.register_pickle_by_value(socket_io)
        cloudpickle.register_pickle_by_value(tcp_transport)
        cloudpickle.register_pickle_by_value(tcp_two_sided)

        register_tensor_transport("tcp", ["cpu"], TcpTransport)
        register_tensor_transport("tcp2", ["cpu"], TcpTwoSidedTransport)
        connect()


        @ray.remote(enable_tensor_transport=True)
        class MyActor:
            def make(self, n):
                return torch.arange(n, dtype=torch.float64)

            def sum(self, tensor):
                return float(tensor.sum())

            def log(self):
                return [(e["transport"], e["bytes"], e["error"])
                        for e in ray.experimental.transfer_log()]

            where = where_method


        sender, receiver = pinned(MyActor, "h2").remote(), pinned(MyActor, "h3").remote()
        n = 1 << 20
        one_sided = sender.make.options(tensor_transport="tcp").remote(n)
        create_collective_group([sender, receiver], backend="tcp2")
        two_sided = sender.make.options(tensor_transport="tcp2").remote(n)
        emit({"where": ray.get([sender.where.remote(), receiver.where.remote()],
                               timeout=GET_TIMEOUT_S),
              "sums": ray.get([receiver.sum.remote(one_sided), receiver.sum.remote(two_sided)],
                              timeout=GET_TIMEOUT_S),
              "driver": float(ray.get(one_sided, timeout=GET_TIMEOUT_S).sum()),
              "log": ray.get(receiver.log.remote(), timeout=GET_TIMEOUT_S),
              "expected": float(n * (n - 1) / 2)})
        """))
    assert [w["hostname"] for w in out["where"]] == ["ferry-h2", "ferry-h3"], out["where"]
    assert out["sums"] == [out["expected"]] * 2, out
    assert out["driver"] == out["expected"], out
    assert ["tcp", 8 << 20, None] in out["log"] and ["tcp2", 8 << 20, None] in out["log"], out
