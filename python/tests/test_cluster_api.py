"""Cluster mode's Python API without a cluster: addresses, the cluster file,
ferry.init's resolution and errors, nodes and resources, GPU ids, and the
actor options resources / scheduling_strategy. The runtime is a fake where a
call would reach _core (runtime._core or runtime._runtime replaced)."""
import os
import stat

import pytest

import ferry
from ferry._private import cluster_address, runtime
from ferry.util.scheduling_strategies import NodeAffinitySchedulingStrategy


@pytest.fixture
def temp(tmp_path, monkeypatch):
    """A private temp dir as FERRY_TEMP_DIR, no cluster settings in the
    environment, and no runtime of this process in the way."""
    path = str(tmp_path / "ferry")
    monkeypatch.setenv("FERRY_TEMP_DIR", path)
    for name in ("FERRY_TOKEN", "FERRY_NODE_IP", "FERRY_ADDRESS", "FERRY_GPU_IDS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(runtime, "_runtime", None)
    return path


def write_cluster_file(temp, address="10.0.0.1:6379", token="file-token", node_ip="10.0.0.2"):
    cluster_address.ensure_private_dir(temp)
    cluster_address.write_private_json(cluster_address.cluster_file_path(temp), {
        "address": address, "token": token, "node_ip": node_ip, "node_id": "ab" * 8,
        "writer_pid": os.getpid()})


# --- addresses and files --------------------------------------------------------


@pytest.mark.parametrize("text, parsed", [
    ("10.0.0.1:6379", "10.0.0.1:6379"),
    ("ferry://10.0.0.1:6379", "10.0.0.1:6379"),
    (" 127.0.0.1:7000 ", "127.0.0.1:7000"),
    ("head-0.cluster.local:6379", "head-0.cluster.local:6379"),
])
def test_parse_address(text, parsed):
    assert cluster_address.parse_address(text) == parsed


@pytest.mark.parametrize("text", [
    "", "10.0.0.1", "10.0.0.1:", ":6379", "10.0.0.1:0", "10.0.0.1:65536", "10.0.0.1:port",
    "tcp:10.0.0.1:6379", "unix:@ferry", "999.0.0.1:6379", "http://10.0.0.1:6379", "a b:1",
])
def test_parse_address_rejects(text):
    with pytest.raises(ValueError, match="bad ferry cluster address"):
        cluster_address.parse_address(text)


def test_private_json_is_0600_whole_and_create_if_absent(tmp_path):
    path = str(tmp_path / "f.json")
    assert cluster_address.write_private_json(path, {"a": 1})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not cluster_address.write_private_json(path, {"a": 2}, replace=False)
    assert cluster_address.read_json(path) == {"a": 1}
    assert cluster_address.write_private_json(path, {"a": 3})
    assert cluster_address.read_json(path) == {"a": 3}
    assert os.listdir(tmp_path) == ["f.json"]  # no temporary left behind


def test_temp_dir_is_made_private_and_others_are_refused(tmp_path):
    made = cluster_address.ensure_private_dir(str(tmp_path / "a" / "b"))
    assert stat.S_IMODE(os.stat(made).st_mode) == 0o700
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    with pytest.raises(PermissionError, match="others can write"):
        cluster_address.ensure_private_dir(str(open_dir))


def test_malformed_cluster_file_is_an_error(temp):
    cluster_address.ensure_private_dir(temp)
    cluster_address.write_private_json(cluster_address.cluster_file_path(temp), {"address": 1})
    with pytest.raises(ValueError, match="malformed ferry cluster file"):
        cluster_address.read_cluster_file(temp)


# --- ferry.init -----------------------------------------------------------------


class FakeCore:
    """runtime._core with a start_driver that records its options, or raises."""

    def __init__(self, error=None):
        self.options = []
        self.error = error
        core = self

        class Runtime:
            @staticmethod
            def start_driver(options):
                core.options.append(options)
                if core.error is not None:
                    raise core.error
                return FakeRuntime([])
        self.Runtime = Runtime

    @staticmethod
    def install_shm_allocator():
        return True


@pytest.fixture
def fake_core(temp, monkeypatch):
    core = FakeCore()
    monkeypatch.setattr(runtime, "_core", core)
    monkeypatch.setenv("FERRY_SHM_ARENA", "0")
    monkeypatch.setenv("FERRY_SYS_PATH", "")  # runtime.init sets it; restored after
    return core


def test_init_without_address_runs_the_embedded_runtime(fake_core):
    ferry.init(num_cpus=2, num_gpus=1, resources={"accel": 3})
    assert fake_core.options == [{"address": "", "token": "", "node_ip": "", "num_cpus": 2.0,
                                  "num_gpus": 1.0, "resources": {"accel": 3.0}}]
    assert ferry.is_initialized()


def test_init_with_an_address_takes_the_token_and_node_ip_of_the_cluster_file(temp, fake_core):
    write_cluster_file(temp)
    ferry.init(address="ferry://10.0.0.1:6379")
    assert fake_core.options == [{"address": "10.0.0.1:6379", "token": "file-token",
                                  "node_ip": "10.0.0.2", "num_cpus": None, "num_gpus": None,
                                  "resources": None}]


def test_init_auto_and_environment_overrides(temp, fake_core, monkeypatch):
    write_cluster_file(temp)
    monkeypatch.setenv("FERRY_ADDRESS", "auto")
    monkeypatch.setenv("FERRY_TOKEN", "env-token")
    monkeypatch.setenv("FERRY_NODE_IP", "10.0.0.9")
    ferry.init()
    options = fake_core.options[0]
    assert (options["address"], options["token"], options["node_ip"]) == \
        ("10.0.0.1:6379", "env-token", "10.0.0.9")


def test_init_another_clusters_address_needs_ferry_token(temp, fake_core, monkeypatch):
    write_cluster_file(temp, address="10.0.0.1:6379")
    with pytest.raises(ConnectionError, match="set FERRY_TOKEN"):
        ferry.init(address="10.0.0.8:6379")
    monkeypatch.setenv("FERRY_TOKEN", "t")
    ferry.init(address="10.0.0.8:6379")
    assert fake_core.options[0]["node_ip"] == ""  # the core picks the route to the head


def test_init_auto_without_a_cluster(temp, fake_core):
    with pytest.raises(ConnectionError, match=r"no ferry cluster is running on this host .*"
                                              r"ferry_current_cluster.*ferry start --head"):
        ferry.init(address="auto")
    assert fake_core.options == []


def test_init_rejects_resources_with_an_address_as_ray(temp, fake_core):
    with pytest.raises(ValueError, match="When connecting to an existing cluster, num_cpus and "
                                         "num_gpus must not be provided"):
        ferry.init(address="auto", num_cpus=1)
    with pytest.raises(ValueError, match="resources must not be provided"):
        ferry.init(address="auto", resources={"a": 1})
    with pytest.raises(ValueError, match="bad ferry cluster address"):
        ferry.init(address="10.0.0.1")
    with pytest.raises(ValueError, match="a ferry cluster address is a string"):
        ferry.init(address=6379)
    with pytest.raises(ValueError, match="num_gpus must be a number >= 0"):
        ferry.init(num_gpus=-1)
    assert fake_core.options == []


@pytest.mark.parametrize("error", [OSError("connection refused"), TimeoutError("timed out"),
                                   PermissionError("wrong cluster token"),
                                   RuntimeError("head closed the connection"),
                                   ferry.exceptions.ActorDiedError("unavailable")])
def test_init_failing_to_connect_raises_connection_error(temp, fake_core, monkeypatch, error):
    monkeypatch.setenv("FERRY_TOKEN", "t")
    fake_core.error = error
    with pytest.raises(ConnectionError, match=r"cannot connect to the ferry cluster at "
                                              r"10\.0\.0\.1:6379: ") as info:
        ferry.init(address="10.0.0.1:6379")
    assert info.value.__cause__ is error
    assert not ferry.is_initialized()


def test_embedded_start_errors_pass_unchanged(fake_core):
    fake_core.error = RuntimeError("no memory")
    with pytest.raises(RuntimeError, match="^no memory$"):
        ferry.init()


# --- nodes, resources, GPU ids -------------------------------------------------------


class FakeRuntime:
    session = "fake-session"

    def __init__(self, node_list):
        self.node_list = node_list
        self.created = []

    def nodes(self):
        return self.node_list

    def create_actor(self, name, opts, command, data, buffers, deps, contained):
        self.created.append(opts)
        return b"\x01" * 16


def node(node_id, alive, total, free):
    return {"NodeID": node_id, "Alive": alive, "NodeManagerAddress": "10.0.0.1",
            "Resources": total, "AvailableResources": free}


def test_resources_sum_the_alive_nodes(temp, monkeypatch):
    listed = [node("aa", True, {"CPU": 4.0, "GPU": 1.0}, {"CPU": 3.0}),
              node("bb", True, {"CPU": 2.0, "accel": 1.0}, {"CPU": 2.0, "accel": 1.0}),
              node("cc", False, {"CPU": 64.0}, {"CPU": 64.0})]
    monkeypatch.setattr(runtime, "_runtime", FakeRuntime(listed))
    assert ferry.nodes() == listed
    assert ferry.cluster_resources() == {"CPU": 6.0, "GPU": 1.0, "accel": 1.0}
    assert ferry.available_resources() == {"CPU": 5.0, "accel": 1.0}


@pytest.mark.parametrize("value, ids", [(None, []), ("", []), ("0", [0]), ("0,2", [0, 2]),
                                        (" 1 , 3 ", [1, 3])])
def test_get_gpu_ids(temp, monkeypatch, value, ids):
    if value is not None:
        monkeypatch.setenv("FERRY_GPU_IDS", value)
    assert ferry.get_gpu_ids() == ids


def test_get_gpu_ids_rejects_garbage(temp, monkeypatch):
    monkeypatch.setenv("FERRY_GPU_IDS", "0,gpu1")
    with pytest.raises(ValueError, match="FERRY_GPU_IDS"):
        ferry.get_gpu_ids()


# --- scheduling strategies and actor options --------------------------------------------


def test_node_affinity_strategy_as_ray():
    import ferry.util.scheduling_strategies as strategies
    assert ferry.util.scheduling_strategies is strategies
    s = NodeAffinitySchedulingStrategy("ab12", soft=True)
    assert (s.node_id, s.soft) == ("ab12", True)
    assert repr(s) == "NodeAffinitySchedulingStrategy(node_id='ab12', soft=True)"
    assert NodeAffinitySchedulingStrategy("ab12").soft is False
    for bad in ("", "xyz", 12):
        with pytest.raises(ValueError, match="node_id"):
            NodeAffinitySchedulingStrategy(bad)
    with pytest.raises(ValueError, match="soft"):
        NodeAffinitySchedulingStrategy("ab", soft="yes")


class Plain:
    def ping(self):
        return "pong"


@pytest.mark.parametrize("strategy, sent", [
    (None, None), ("DEFAULT", "DEFAULT"), ("SPREAD", "SPREAD"),
    (NodeAffinitySchedulingStrategy("ab12"), ("node_affinity", "ab12", False)),
    (NodeAffinitySchedulingStrategy("ab12", soft=True), ("node_affinity", "ab12", True)),
])
def test_actor_options_reach_create_actor(temp, monkeypatch, strategy, sent):
    rt = FakeRuntime([])
    monkeypatch.setattr(runtime, "_runtime", rt)
    actor_cls = ferry.remote(num_cpus=1, resources={"accel": 2})(Plain)
    actor_cls.options(scheduling_strategy=strategy, num_gpus=0.5).remote()
    opts = rt.created[0]
    assert opts["resources"] == {"accel": 2.0}
    assert opts["scheduling_strategy"] == sent
    assert (opts["num_cpus"], opts["num_gpus"]) == (1, 0.5)


@pytest.mark.parametrize("options, message", [
    ({"resources": {"CPU": 1}}, "'num_cpus' and 'num_gpus'"),
    ({"resources": {"GPU": 1}}, "'num_cpus' and 'num_gpus'"),
    ({"resources": {"accel": -1}}, "must be a number >= 0"),
    ({"resources": {"accel": True}}, "must be a number >= 0"),
    ({"resources": {"": 1}}, "non-empty str"),
    ({"resources": [("accel", 1)]}, "must be a dict"),
    ({"num_cpus": -1}, "num_cpus must be a number >= 0"),
    ({"num_gpus": "1"}, "num_gpus must be a number >= 0"),
    ({"scheduling_strategy": "PACK"}, "scheduling_strategy must be"),
    ({"scheduling_strategy": ("node_affinity", "ab", False)}, "scheduling_strategy must be"),
    ({"placement_group": None}, "unknown actor options"),
])
def test_bad_actor_options(options, message):
    with pytest.raises(ValueError, match=message):
        ferry.remote(Plain).options(**options)
    with pytest.raises(ValueError, match=message):
        ferry.remote(**options)(Plain)
