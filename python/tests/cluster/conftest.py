"""Fixtures of the cluster tests: ferry clusters on network-namespace hosts.

* ``netns_hosts`` (session): hosts h1, h2, h3 from scripts/netns-cluster.sh
  (10.213.0.11-13, each its own network namespace and hostname). Where this
  machine cannot make them (not root, no network namespaces, no iproute2)
  every test here is skipped with the reason.
* ``cluster`` (module): a cluster on them, shared by one module's tests,
  which must leave it as they found it: the head on h1, a node on h2 and h3,
  4 CPUs each, and h3 alone with the custom resource ``special: 1``.
* ``fresh_cluster`` (function): a factory of clusters of the same shape
  (with extra daemon environment) for tests that break one; links are healed
  and unshaped afterwards.

Every cluster ends with ``ferry stop`` on every host, and its teardown fails
if a process is left in the hosts or a new ferry file in /dev/shm
(``FerryCluster.stop``). Drivers run inside a host through
``cluster.run_driver`` / ``driver_json`` / ``popen_driver`` and import
``driver_lib``.
"""
import pytest

from .netns import ClusterError, FerryCluster, NetnsHosts, NetnsUnavailable

HOST_COUNT = 3
# Custom resources per host: only h3 has "special".
RESOURCES = {"h3": {"special": 1}}
NUM_CPUS = 4


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "cluster: runs a ferry cluster on network-namespace hosts "
                   "(scripts/netns-cluster.sh; needs root, skips otherwise)")


@pytest.fixture(scope="session")
def netns_hosts():
    hosts = NetnsHosts(HOST_COUNT)
    try:
        hosts.up()
    except NetnsUnavailable as e:
        pytest.skip(f"cluster tests need network-namespace hosts: {e}")
    try:
        yield hosts
    finally:
        hosts.down()


def _start(cluster):
    try:
        cluster.start()
    except BaseException:
        try:
            cluster.stop()  # removes what did start; the start error is the one to report
        except ClusterError:
            pass
        raise
    return cluster


@pytest.fixture(scope="module")
def cluster(netns_hosts, tmp_path_factory):
    c = _start(FerryCluster(netns_hosts, tmp_path_factory.mktemp("cluster"), num_cpus=NUM_CPUS,
                            resources=RESOURCES))
    yield c
    c.stop()


@pytest.fixture
def fresh_cluster(netns_hosts, tmp_path):
    """``fresh_cluster(env={...}, start_args={host: [...]})`` -> a started
    FerryCluster of its own."""
    made = []

    def make(env=None, start_args=None):
        c = FerryCluster(netns_hosts, tmp_path / f"cluster{len(made)}", num_cpus=NUM_CPUS,
                         resources=RESOURCES, env=env, start_args=start_args)
        made.append(c)
        return _start(c)

    yield make
    errors = []
    for host in netns_hosts.hosts:
        for undo in (netns_hosts.heal, netns_hosts.unshape):
            try:
                undo(host)
            except RuntimeError as e:
                errors.append(str(e))
    for c in made:
        try:
            c.stop()
        except ClusterError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)
