"""Remote functions across hosts: tasks are placed by resources like actors
(a custom resource only h3 has, node affinity, more tasks than one host's
CPUs), run on pooled workers that are reused, can call each other across
hosts, and are retried on another worker when theirs dies.

The cluster (conftest): h1 (head), h2, h3 with 4 CPUs each; only h3 has
{"special": 1}."""
import pytest

from .snippets import driver

pytestmark = pytest.mark.cluster


def test_tasks_are_placed_by_resources_and_reuse_pooled_workers(cluster):
    out = cluster.driver_json("h1", driver("""
        import os
        import socket

        import ferry
        from ferry.util.scheduling_strategies import NodeAffinitySchedulingStrategy
        from driver_lib import GET_TIMEOUT_S, connect, emit, node_id

        connect()


        @ferry.remote
        def where():
            return socket.gethostname(), os.getpid()


        @ferry.remote
        def nested(n):
            # Calls back into tasks placed anywhere, from a task on h2.
            return socket.gethostname(), sum(ferry.get([square.remote(i) for i in range(n)],
                                                       timeout=GET_TIMEOUT_S))


        @ferry.remote
        def square(x):
            return x * x


        special = [ferry.get(where.options(resources={"special": 1}).remote(),
                             timeout=GET_TIMEOUT_S) for _ in range(5)]
        on_h2 = NodeAffinitySchedulingStrategy(node_id("h2"), soft=False)
        pinned = ferry.get(where.options(scheduling_strategy=on_h2).remote(),
                           timeout=GET_TIMEOUT_S)
        # 12 tasks of 2 CPUs each: one host holds 2 at a time, three hold 6.
        wide = ferry.get([where.options(num_cpus=2).remote() for _ in range(12)],
                         timeout=GET_TIMEOUT_S)
        emit({"special": special, "pinned": pinned, "wide": wide,
              "nested": ferry.get(nested.options(scheduling_strategy=on_h2).remote(6),
                                  timeout=GET_TIMEOUT_S)})
        """))
    assert {host for host, _ in out["special"]} == {"ferry-h3"}, out["special"]
    assert len({pid for _, pid in out["special"]}) == 1, "one pooled worker served all five"
    assert out["pinned"][0] == "ferry-h2", out
    assert len({tuple(w) for w in out["wide"]}) <= 6, out["wide"]
    assert out["nested"] == ["ferry-h2", 55], out


def test_a_task_whose_host_worker_dies_is_retried(cluster):
    out = cluster.driver_json("h1", driver("""
        import os
        import socket
        import tempfile

        import ferry
        from driver_lib import GET_TIMEOUT_S, connect, emit, error

        connect()


        @ferry.remote(max_retries=2)
        def crash_first_attempt_on_h3(marker):
            host = socket.gethostname()
            if host == "ferry-h3" and not os.path.exists(marker):
                open(marker, "w").close()
                os._exit(7)
            return host


        marker = os.path.join(tempfile.mkdtemp(dir="/tmp"), "crashed")
        out = {}
        try:
            out["host"] = ferry.get(crash_first_attempt_on_h3.options(
                resources={"special": 1}).remote(marker), timeout=GET_TIMEOUT_S)
        except Exception as e:
            out["error"] = error(e)
        emit(out)
        """))
    assert out.get("host") == "ferry-h3", out


def test_spread_tasks_that_run_at_once_land_on_three_hosts(cluster):
    out = cluster.driver_json("h1", driver("""
        import os
        import socket
        import tempfile
        import time

        import ferry
        from driver_lib import GET_TIMEOUT_S, connect, emit, wait_for

        connect()


        @ferry.remote(scheduling_strategy="SPREAD")
        def hold(release):
            with open(release + ".started", "a") as f:
                f.write(socket.gethostname() + "\\n")
            deadline = time.monotonic() + 60
            while not os.path.exists(release) and time.monotonic() < deadline:
                time.sleep(0.005)
            return socket.gethostname()


        release = os.path.join(tempfile.mkdtemp(dir="/tmp"), "release")

        def started():
            try:
                with open(release + ".started") as f:
                    return f.read().split()
            except FileNotFoundError:
                return []

        refs = [hold.remote(release) for _ in range(3)]
        wait_for(lambda: len(started()) == 3, 60)
        open(release, "w").close()
        emit({"hosts": ferry.get(refs, timeout=GET_TIMEOUT_S)})
        """))
    assert sorted(out["hosts"]) == ["ferry-h1", "ferry-h2", "ferry-h3"], out
