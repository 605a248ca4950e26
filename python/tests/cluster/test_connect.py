"""Connecting drivers: address="auto" on the head's host, FERRY_ADDRESS with no
argument, and a driver with the wrong token refused."""
import pytest

from .snippets import driver

pytestmark = pytest.mark.cluster


WHERE_DRIVER = driver("""
    import ferry
    from driver_lib import GET_TIMEOUT_S, alive_nodes, emit


    @ferry.remote
    class Probe:
        where = where_method


    ferry.init(address=ADDRESS_ARG)
    a = Probe.remote()
    emit({"alive": len(alive_nodes()), "where": ferry.get(a.where.remote(), timeout=GET_TIMEOUT_S)})
    """)


def test_auto_on_the_head_host_reads_the_cluster_file(cluster):
    out = cluster.driver_json("h1", WHERE_DRIVER.replace("ADDRESS_ARG", '"auto"'),
                              env={"FERRY_ADDRESS": None, "FERRY_TOKEN": None})
    assert out["alive"] == 3, out
    assert out["where"]["hostname"] in ("ferry-h1", "ferry-h2", "ferry-h3"), out


def test_ferry_address_and_token_from_the_environment(cluster):
    out = cluster.driver_json("h3", WHERE_DRIVER.replace("ADDRESS_ARG", "None"))
    assert out["alive"] == 3, out


def test_a_driver_with_the_wrong_token_is_refused(cluster):
    out = cluster.driver_json("h2", driver("""
        import time
        import ferry
        from driver_lib import ADDRESS, emit, error

        t0 = time.monotonic()
        try:
            ferry.init(address=ADDRESS)
            result = {"nodes": len(ferry.nodes())}
        except Exception as e:
            result = {"error": error(e)}
        result["seconds"] = time.monotonic() - t0
        emit(result)
        """), env={"FERRY_TOKEN": "0" * 64})
    assert "error" in out, f"a driver with a wrong token connected: {out}"
    assert "ConnectionError" in out["error"]["mro"], out
    assert out["seconds"] < 15, out
