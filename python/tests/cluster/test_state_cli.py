"""`ferry status`, `ferry list` and `ferry memory` against a cluster: from a
host that joined it (its cluster file names the head and the token), and
from anywhere with --address and --token; a wrong token is refused clearly.
What the processes hold is gathered from every host.

The cluster (conftest): h1 (head), h2, h3 with 4 CPUs each."""
import json

import pytest

from .netns import ClusterError, host_ip, host_temp_dir
from .snippets import driver

pytestmark = pytest.mark.cluster

WAIT_S = 60


def test_status_and_list_show_every_host_and_the_actors_placed_there(cluster):
    d = cluster.popen_driver("h1", driver("""
        import sys

        import torch

        import ferry
        from ferry.experimental.collective import create_collective_group
        from ferry.util.scheduling_strategies import NodeAffinitySchedulingStrategy
        from driver_lib import GET_TIMEOUT_S, connect, emit, node_id

        connect()


        @ferry.remote
        class Holder:
            def ping(self):
                return "pong"

            @ferry.method(tensor_transport="gloo")
            def make(self, n):
                return torch.ones(n)

            def total(self, t):
                return float(t.sum())


        def on(host):
            return NodeAffinitySchedulingStrategy(node_id(host), soft=False)


        h = Holder.options(name="on-h3", scheduling_strategy=on("h3")).remote()
        taker = Holder.options(name="on-h2", scheduling_strategy=on("h2")).remote()
        ferry.get(h.ping.remote(), timeout=GET_TIMEOUT_S)
        create_collective_group([h, taker], backend="torch_gloo", name="across")
        rdt = h.make.remote(25_000)
        assert ferry.get(taker.total.remote(rdt), timeout=GET_TIMEOUT_S) == 25_000.0
        emit({"ready": True})
        sys.stdin.read()
        ferry.shutdown()
        """))
    try:
        assert d.next_json(WAIT_S) == {"ready": True}
        # On h2, with no flags: its cluster file says where the head is.
        text = cluster.ferry_command("h2", ["status", "--temp-dir", str(host_temp_dir("h2"))],
                                     WAIT_S)
        assert f"ferry cluster at {cluster.address}" in text, text
        assert "Nodes: 3 alive, 0 dead" in text, text
        assert "Actors: 2 ALIVE" in text, text
        assert "across  torch_gloo  2 members  ALIVE" in text, text
        for host in ("h1", "h2", "h3"):
            assert host_ip(host) in text, text
        rows = json.loads(cluster.ferry_command(
            "h2", ["list", "actors", "--format", "json", "--temp-dir", str(host_temp_dir("h2"))],
            WAIT_S))
        holder = [r for r in rows if r["name"] == "on-h3"]
        assert len(holder) == 1 and holder[0]["state"] == "ALIVE", rows
        assert holder[0]["node_ip"] == host_ip("h3") and holder[0]["pid"] > 0
        # What the processes hold, from every host: the driver on h1 owns the
        # RDT object, the actor on h3 keeps its tensors and sent them to h2.
        def from_h2(*args):
            return json.loads(cluster.ferry_command(
                "h2", [*args, "--format", "json", "--temp-dir", str(host_temp_dir("h2"))],
                WAIT_S))
        [obj] = [o for o in from_h2("list", "objects") if o["kind"] == "rdt"]
        pids = {r["name"]: r["pid"] for r in rows}
        assert obj["owner"].startswith("driver pid=") and obj["node"] == host_ip("h1"), obj
        assert obj["tensors_in"] == [f"Holder pid={pids['on-h3']}"] and obj["size"] == 100_000
        [t] = from_h2("list", "transfers")
        assert (t["from"], t["to"]) == (f"Holder pid={pids['on-h3']}",
                                        f"Holder pid={pids['on-h2']}"), t
        assert t["transport"] == "gloo" and t["path"] == "gloo" and t["size"] == 100_000, t
        memory = from_h2("memory")
        assert memory["nodes"][host_ip("h3")]["tensor_store_bytes"] == 100_000, memory
        assert memory["unanswered"] == []
        # From h3, naming the head and the token.
        nodes = json.loads(cluster.ferry_command(
            "h3", ["list", "nodes", "--format", "json", "--address", cluster.address,
                   "--token", cluster.token], WAIT_S))
        assert sorted(n["address"] for n in nodes) == [host_ip(h) for h in ("h1", "h2", "h3")]
        assert [n["head"] for n in nodes if n["address"] == host_ip("h1")] == [True]
        with pytest.raises(ClusterError, match="rejected the cluster token"):
            cluster.ferry_command("h3", ["status", "--address", cluster.address, "--token",
                                         "not-the-token"], WAIT_S)
    finally:
        assert d.finish(WAIT_S) == 0, d.describe()
