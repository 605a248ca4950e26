"""The dashboard served by the head (`ferry start --head --dashboard`) shows a
transfer between two other hosts, and a node's own /metrics (`ferry start
--metrics-port`) counts what its processes did, and only theirs.

The cluster (conftest): h1 (head), h2, h3."""
import json

import pytest

from .netns import host_ip
from .snippets import driver

pytestmark = pytest.mark.cluster

WAIT_S = 60
DASHBOARD = "http://127.0.0.1:8265"
METRICS = "http://127.0.0.1:9101/metrics"


def test_head_dashboard_and_a_nodes_metrics(fresh_cluster):
    c = fresh_cluster(start_args={"h1": ["--dashboard"], "h2": ["--metrics-port", "9101"]})
    d = c.popen_driver("h1", driver("""
        import sys

        import torch

        import ferry
        from ferry.experimental.collective import create_collective_group
        from ferry.util.scheduling_strategies import NodeAffinitySchedulingStrategy
        from driver_lib import GET_TIMEOUT_S, connect, emit, node_id

        connect()


        @ferry.remote
        class Stage:
            @ferry.method(tensor_transport="gloo")
            def produce(self, n):
                return torch.ones(n)

            def consume(self, t):
                return float(t.sum())


        def on(host):
            return NodeAffinitySchedulingStrategy(node_id(host), soft=False)


        producer = Stage.options(scheduling_strategy=on("h3")).remote()
        consumer = Stage.options(scheduling_strategy=on("h2")).remote()
        create_collective_group([producer, consumer], backend="torch_gloo", name="h3-h2")
        ref = producer.produce.remote(25_000)
        assert ferry.get(consumer.consume.remote(ref), timeout=GET_TIMEOUT_S) == 25_000.0
        emit({"ready": True})
        sys.stdin.read()
        ferry.shutdown()
        """))
    try:
        assert d.next_json(WAIT_S) == {"ready": True}
        [t] = json.loads(c.http_get("h1", DASHBOARD + "/api/transfers"))
        assert t["size"] == 100_000 and t["path"] == "gloo", t
        nodes = json.loads(c.http_get("h1", DASHBOARD + "/api/nodes"))
        assert sorted(n["address"] for n in nodes) == [host_ip(h) for h in ("h1", "h2", "h3")]
        assert "<title>ferry dashboard</title>" in c.http_get("h1", DASHBOARD + "/")
        # h2's metrics: its consumer received the bytes; h3's processes are not counted.
        lines = c.http_get("h2", METRICS).splitlines()
        [recv] = [line for line in lines if line.startswith("ferry_transfer_bytes_total{")]
        assert f'node="{host_ip("h2")}"' in recv and 'direction="recv"' in recv, lines
        assert recv.endswith(" 100000.0"), recv
        assert not [line for line in lines if f'node="{host_ip("h3")}"' in line]
        assert 'ferry_nodes{state="alive"} 3.0' in lines
    finally:
        assert d.finish(WAIT_S) == 0, d.describe()
