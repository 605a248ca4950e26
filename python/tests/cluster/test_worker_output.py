"""What workers on other hosts print reaches the driver that created them,
prefixed with the worker's name, pid and node ("(Printer pid=12, node=IP)"),
and stays in the worker's log file on its own host (<temp dir>/logs)."""
import glob

import pytest

from .netns import host_ip, host_temp_dir
from .polling import wait_for
from .snippets import driver

pytestmark = pytest.mark.cluster

WAIT_S = 60


def test_output_of_a_worker_on_another_host_reaches_the_driver_with_its_node(cluster):
    d = cluster.popen_driver("h1", driver("""
        import sys

        import ferry
        from ferry.util.scheduling_strategies import NodeAffinitySchedulingStrategy
        from driver_lib import GET_TIMEOUT_S, connect, emit, node_id

        connect()


        @ferry.remote
        class Printer:
            where = where_method

            def say(self, text):
                print(text)
                print("err:" + text, file=sys.stderr)
                return self.where()["pid"]


        on_h2 = NodeAffinitySchedulingStrategy(node_id("h2"), soft=False)
        p = Printer.options(scheduling_strategy=on_h2).remote()
        emit({"pid": ferry.get(p.say.remote("hello from h2"), timeout=GET_TIMEOUT_S)})
        sys.stdin.read()  # until the test has seen the lines
        ferry.shutdown()
        """))
    try:
        pid = d.next_json(WAIT_S)["pid"]
        prefix = f"(Printer pid={pid}, node={host_ip('h2')}) "
        assert d.wait_line(prefix + "hello from h2", WAIT_S) == prefix + "hello from h2"
        assert wait_for(lambda: prefix + "err:hello from h2\n" in d.stderr_path.read_text(),
                        WAIT_S), d.describe()
        logs = glob.glob(str(host_temp_dir("h2") / "logs" / f"worker-*-{pid}.out"))
        assert len(logs) == 1, logs
        with open(logs[0]) as f:
            assert f.read() == "hello from h2\n"
    finally:
        assert d.finish(WAIT_S) == 0, d.describe()
