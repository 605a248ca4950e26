"""Nodes and placement: ferry.nodes(), custom resources, SPREAD, node
affinity, CPU accounting, and requests no node can satisfy.

The cluster (conftest): h1 (head), h2, h3 with 4 CPUs each and no GPU; only
h3 has {"special": 1}. Each test kills the actors it made, so the next test
finds every node's resources free again."""
import pytest

from .snippets import driver

pytestmark = pytest.mark.cluster

HOSTS = ("h1", "h2", "h3")


def test_nodes_lists_every_host_alive_with_its_resources(cluster):
    out = cluster.driver_json("h1", driver("""
        import ferry
        from driver_lib import HOSTS, connect, emit

        connect()
        emit({"nodes": ferry.nodes(), "hosts": HOSTS})
        """))
    nodes = out["nodes"]
    assert len(nodes) == 3, nodes
    assert all(n["Alive"] for n in nodes), nodes
    assert sorted(n["NodeManagerAddress"] for n in nodes) == sorted(out["hosts"].values())
    ids = [n["NodeID"] for n in nodes]
    assert len(set(ids)) == 3 and all(int(i, 16) >= 0 for i in ids), ids
    by_host = {h: next(n for n in nodes if n["NodeManagerAddress"] == ip)
               for h, ip in out["hosts"].items()}
    for host, node in by_host.items():
        assert node["Resources"].get("CPU") == 4, (host, node)
        assert node["Resources"].get("GPU", 0) == 0, (host, node)
        assert node["AvailableResources"].get("CPU") == 4, (host, node)
    assert by_host["h3"]["Resources"].get("special") == 1
    assert "special" not in by_host["h1"]["Resources"]
    assert "special" not in by_host["h2"]["Resources"]


def test_custom_resource_places_the_actor_on_the_only_host_that_has_it(cluster):
    out = cluster.driver_json("h1", driver("""
        import ferry
        from driver_lib import GET_TIMEOUT_S, connect, emit, node_id, nodes_by_host, wait_for

        connect()


        @ferry.remote
        class Special:
            where = where_method


        a = Special.options(resources={"special": 1}).remote()
        where = ferry.get(a.where.remote(), timeout=GET_TIMEOUT_S)
        held = wait_for(lambda: nodes_by_host()["h3"]["AvailableResources"].get("special") == 0, 10)
        ferry.kill(a)
        freed = wait_for(lambda: nodes_by_host()["h3"]["AvailableResources"].get("special") == 1, 10)
        emit({"where": where, "h3": node_id("h3"), "held": held, "freed": freed})
        """))
    assert out["where"]["node_id"] == out["h3"], out
    assert out["where"]["hostname"] == "ferry-h3", out
    assert out["held"], "h3's special resource was not in use while the actor lived"
    assert out["freed"], "h3's special resource did not come back after ferry.kill"


def test_spread_puts_three_actors_on_three_hosts(cluster):
    out = cluster.driver_json("h1", driver("""
        import ferry
        from driver_lib import GET_TIMEOUT_S, connect, emit

        connect()


        @ferry.remote
        class Spread:
            where = where_method


        actors = [Spread.options(scheduling_strategy="SPREAD").remote() for _ in range(3)]
        wheres = ferry.get([a.where.remote() for a in actors], timeout=GET_TIMEOUT_S)
        for a in actors:
            ferry.kill(a)
        emit({"wheres": wheres})
        """))
    wheres = out["wheres"]
    assert len({w["node_id"] for w in wheres}) == 3, wheres
    assert sorted(w["hostname"] for w in wheres) == ["ferry-h1", "ferry-h2", "ferry-h3"], wheres


def test_node_affinity_places_on_the_named_node_and_fails_fast_for_an_unknown_one(cluster):
    out = cluster.driver_json("h1", driver("""
        import time
        import ferry
        from ferry.util.scheduling_strategies import NodeAffinitySchedulingStrategy
        from driver_lib import GET_TIMEOUT_S, connect, emit, error, node_id

        connect()


        @ferry.remote
        class Pinned:
            where = where_method


        placed = {}
        for host in ("h3", "h1", "h2"):
            a = Pinned.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id(host), soft=False)).remote()
            placed[host] = ferry.get(a.where.remote(), timeout=GET_TIMEOUT_S)
            ferry.kill(a)

        unknown = "0" * len(node_id("h1"))
        t0 = time.monotonic()
        try:
            a = Pinned.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(unknown, soft=False)).remote()
            hard = {"value": ferry.get(a.where.remote(), timeout=GET_TIMEOUT_S)}
        except Exception as e:
            hard = {"error": error(e)}
        hard["seconds"] = time.monotonic() - t0

        a = Pinned.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(unknown, soft=True)).remote()
        soft = ferry.get(a.where.remote(), timeout=GET_TIMEOUT_S)
        ferry.kill(a)
        emit({"placed": placed, "hard": hard, "soft": soft,
              "node_ids": {h: node_id(h) for h in ("h1", "h2", "h3")}})
        """))
    for host, where in out["placed"].items():
        assert where["node_id"] == out["node_ids"][host], (host, where)
        assert where["hostname"] == f"ferry-{host}", (host, where)
    assert "error" in out["hard"], f"hard affinity to an unknown node ran: {out['hard']}"
    assert out["hard"]["seconds"] < 5, out["hard"]
    assert out["soft"]["node_id"] in out["node_ids"].values(), out["soft"]


def test_gpu_request_on_a_cluster_without_gpus_fails_at_once(cluster):
    out = cluster.driver_json("h1", driver("""
        import time
        import ferry
        from driver_lib import GET_TIMEOUT_S, connect, emit, error

        connect()


        @ferry.remote
        class NeedsGpu:
            where = where_method


        t0 = time.monotonic()
        try:
            a = NeedsGpu.options(num_gpus=1).remote()
            result = {"value": ferry.get(a.where.remote(), timeout=GET_TIMEOUT_S)}
        except Exception as e:
            result = {"error": error(e)}
        result["seconds"] = time.monotonic() - t0
        emit(result)
        """))
    assert "error" in out, f"an actor asking for a GPU ran on a cluster without GPUs: {out}"
    assert out["seconds"] < 5, f"the infeasible request took {out['seconds']:.1f} s to fail"
    message = out["error"]["message"]
    assert "GPU" in message and "1" in message, f"the error does not name the request: {message!r}"
    assert out["error"]["type"] != "GetTimeoutError", out


def test_cpu_accounting_default_actor_holds_no_cpu_and_a_full_node_makes_actors_wait(cluster):
    """num_cpus defaults to 1 to place and 0 while running (Ray's rule); an
    actor whose node is full waits (it is not infeasible) and runs once the
    CPUs come back."""
    out = cluster.driver_json("h1", driver("""
        import ferry
        from ferry.exceptions import GetTimeoutError
        from driver_lib import GET_TIMEOUT_S, connect, emit, error, nodes_by_host, pinned, wait_for

        connect()


        @ferry.remote
        class Worker:
            where = where_method


        def h2_cpus():
            return nodes_by_host()["h2"]["AvailableResources"].get("CPU")

        # A default actor needs 1 CPU free to be placed and then holds none,
        # so an actor asking for all 4 of h2's CPUs still fits beside it.
        idle = pinned(Worker, "h2").remote()
        ferry.get(idle.where.remote(), timeout=GET_TIMEOUT_S)
        big = pinned(Worker, "h2", num_cpus=4).remote()
        try:
            beside = {"value": ferry.get(big.where.remote(), timeout=15)}
        except GetTimeoutError as e:
            beside = {"error": error(e)}
        full = wait_for(lambda: h2_cpus() == 0, 10)

        waiting = pinned(Worker, "h2", num_cpus=1).remote()
        try:
            early = {"value": ferry.get(waiting.where.remote(), timeout=2)}
        except GetTimeoutError as e:
            early = {"error": error(e)}
        ferry.kill(big)
        late = ferry.get(waiting.where.remote(), timeout=GET_TIMEOUT_S)
        for a in (idle, waiting):
            ferry.kill(a)
        back = wait_for(lambda: h2_cpus() == 4, 10)
        emit({"beside": beside, "full": full, "early": early, "late": late, "back": back})
        """))
    assert "value" in out["beside"], \
        f"an actor with num_cpus=4 did not fit beside a default actor on a 4-CPU node: {out['beside']}"
    assert out["full"], "h2's CPUs did not drop to 0 under an actor with num_cpus=4"
    assert "error" in out["early"], f"an actor ran on a full node: {out['early']}"
    assert out["late"]["hostname"] == "ferry-h2", out
    assert out["back"], "h2's CPUs did not come back after the actors were killed"
