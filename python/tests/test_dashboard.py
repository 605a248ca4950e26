"""The dashboard against a live session: its JSON API answers what `ferry list`
prints, /metrics has the session's counters, and the page, loaded in a real
browser (headless Chromium), shows a transfer the test made with its bytes.
Also `ferry dashboard` as a command."""
import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.request

import pytest

import ferry
from conftest import wait_for
from ferry._private import runtime
from ferry.dashboard import server, source
from ferry.experimental.collective import create_collective_group
from ferry.scripts import state
from rdt_test_actors import GlooStage

CHROMIUM = shutil.which("chromium")
BYTES = 200_000  # one transfer of 50,000 float32


def _get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.status, r.headers.get("Content-Type", ""), r.read().decode()


@pytest.fixture
def dashboard(ferry_session):
    """A session with one gloo transfer between two actors, and its
    dashboard on a free port: (base URL, the stage actors' names)."""
    producer, consumer = GlooStage.options(name="producer").remote(), \
        GlooStage.options(name="consumer").remote()
    create_collective_group([producer, consumer], backend="torch_gloo", name="stages")
    ref = producer.produce.remote(BYTES // 4)
    assert ferry.get(consumer.consume.remote(ref), timeout=60) == BYTES / 4
    rt = runtime.current()
    target = state.Target(rt.head_address, rt.token, "this session")
    running = server.start_in_thread(source.Source(target), "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{running.port}", ref
    finally:
        running.stop()


def test_the_json_api_answers_what_ferry_list_prints(dashboard):
    base, ref = dashboard
    status, kind, body = _get(base + "/api/transfers")
    assert status == 200 and kind.startswith("application/json")
    [transfer] = json.loads(body)
    assert transfer["size"] == BYTES and transfer["transport"] == "gloo"
    assert transfer["from"].startswith("GlooStage pid=") and transfer["to"].startswith("GlooStage pid=")
    [group] = json.loads(_get(base + "/api/groups")[2])
    assert group["name"] == "stages" and group["state"] == "ALIVE"
    objects = json.loads(_get(base + "/api/objects")[2])
    assert [o["size"] for o in objects if o["kind"] == "rdt"] == [BYTES]
    snapshot = json.loads(_get(base + "/api/snapshot")[2])
    assert set(snapshot) >= {"nodes", "actors", "objects", "transfers", "groups", "throughput"}
    assert sum(snapshot["throughput"]["gloo"]) == BYTES  # within the chart's minute
    with pytest.raises(urllib.error.HTTPError, match="404"):
        _get(base + "/api/nonsense")


def test_metrics_are_prometheus_text_with_the_sessions_counters(dashboard):
    base, _ = dashboard
    status, kind, text = _get(base + "/metrics")
    assert status == 200 and kind.startswith("text/plain")
    lines = text.splitlines()
    assert "# TYPE ferry_transfer_bytes_total counter" in lines
    [recv] = [line for line in lines if line.startswith("ferry_transfer_bytes_total{")
              and 'direction="recv"' in line]
    # Labelled by the path the bytes took: the group's two ranks share this host.
    assert 'transport="shm"' in recv and recv.endswith(f" {float(BYTES)}"), recv
    assert any(line.startswith('ferry_actors{state="ALIVE"} 2.0') for line in lines), text
    assert any(line.startswith('ferry_nodes{state="alive"} 1.0') for line in lines)
    tasks = [float(line.split()[-1]) for line in lines if line.startswith("ferry_tasks_total{")]
    assert sum(tasks) >= 4  # two constructors, produce, consume
    assert any(line.startswith("ferry_tensor_store_bytes{") and line.endswith(f" {float(BYTES)}")
               for line in lines), text


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                    "(scripts/install-deps.sh installs it)")
def test_the_page_shows_the_transfer_in_a_real_browser(dashboard, tmp_path):
    base, ref = dashboard
    home = tmp_path / "chromium"
    command = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
               "--disable-dev-shm-usage", f"--user-data-dir={home}",
               "--virtual-time-budget=10000", "--dump-dom", base + "/"]
    # The browser is not ours to sanitize (make test-asan preloads the ASan runtime).
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")}
    env["HOME"] = str(home)
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert dom.returncode == 0, dom.stderr[-3000:]
    page = dom.stdout
    # The transfer table has the test's transfer with its bytes and path.
    transfers = page.split('id="transfers"')[1].split("</table>")[0]
    assert f">{BYTES}<" in transfers and ">gloo<" in transfers, transfers
    assert ref.hex()[:12] in transfers
    assert "stages" in page.split('id="groups"')[1].split("</table>")[0]
    assert 'id="chart"' in page and "<polyline" in page  # one line per transport
    assert "cannot read the ferry" not in page
    if os.environ.get("FERRY_DASHBOARD_SCREENSHOT"):  # docs/observability.md's picture
        shot = subprocess.run(command[:-2] + ["--window-size=1400,1000",
                                              "--screenshot=" + os.environ[
                                                  "FERRY_DASHBOARD_SCREENSHOT"], base + "/"],
                              capture_output=True, text=True, timeout=120, env=env)
        assert shot.returncode == 0, shot.stderr[-3000:]


def test_ferry_dashboard_serves_a_running_session(dashboard, tmp_path):
    # The command, against this test's session (found through its session file).
    with socket.socket() as probe:  # a port free now (the command takes a number)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "ferry", "dashboard", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line, line + proc.stderr.read()

        def answers():
            try:
                return _get(f"http://127.0.0.1:{port}/api/nodes")[0] == 200
            except OSError:
                return False
        assert wait_for(answers, 30)
        nodes = json.loads(_get(f"http://127.0.0.1:{port}/api/nodes")[2])
        assert len(nodes) == 1 and nodes[0]["alive"]
    finally:
        proc.terminate()
        assert proc.wait(30) is not None
