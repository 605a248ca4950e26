"""The `ferry` command (start / stop) and the node daemon, without a cluster.

The daemon runs for real (`ferry._private.node_daemon.serve`: files,
signals, exit status) around a fake node: in-process here, and in detached
processes that `ferry start` spawns, through a module this file writes (the
`_core.Node` seam of `node_daemon.main`). Waits are on processes and files,
with deadlines; nothing sleeps to synchronize.
"""
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap

import pytest

from conftest import EXIT_DEADLINE, kill_leftovers, pid_alive, wait_for
from ferry._private import cluster_address, node_daemon
from ferry.scripts import cli

# --- argument parsing ---------------------------------------------------------


def run_cli(args, capsys):
    """(exit status, stdout, stderr) of cli.main(args)."""
    try:
        rc = cli.main(args)
    except SystemExit as e:
        rc = e.code
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture
def temp(tmp_path, monkeypatch):
    """A private temp dir, also as FERRY_TEMP_DIR; no FERRY_TOKEN around."""
    path = tmp_path / "ferry"
    monkeypatch.setenv("FERRY_TEMP_DIR", str(path))
    monkeypatch.delenv("FERRY_TOKEN", raising=False)
    return str(path)


@pytest.mark.parametrize("args, message", [
    ([], "required"),
    (["start"], "one of the arguments --head --address is required"),
    (["start", "--head", "--address", "1.2.3.4:6379"], "not allowed with"),
    (["start", "--head", "--resources", "{bad"], "not valid JSON"),
    (["start", "--head", "--resources", "[1, 2]"], "JSON object"),
    (["start", "--head", "--resources", '{"accel": -1}'], "'accel' must be a number >= 0"),
    (["start", "--head", "--resources", '{"accel": "2"}'], "'accel' must be a number >= 0"),
    (["start", "--head", "--resources", '{"CPU": 4}'], "'num_cpus' and 'num_gpus'"),
    (["start", "--head", "--num-cpus", "-1"], "number >= 0"),
    (["start", "--head", "--num-gpus", "x"], "number >= 0"),
    (["start", "--head", "--port", "70000"], "port number"),
    (["start", "--address", "1.2.3.4:6379", "--port", "7000", "--token", "t"], "--port is for the head"),
    (["start", "--address", "1.2.3.4", "--token", "t"], "bad ferry cluster address"),
])
def test_bad_usage_exits_2_with_a_clear_error(args, message, temp, capsys):
    rc, _, err = run_cli(args, capsys)
    assert rc == 2
    assert message in err


def test_head_defaults_are_rays(temp):
    args = cli.build_parser().parse_args(["start", "--head"])
    options, token = cli.daemon_options(args, temp)
    assert options == {"head": True, "address": "", "port": 6379, "node_ip": "127.0.0.1",
                       "num_cpus": float(os.cpu_count()), "num_gpus": 0.0, "resources": {},
                       "temp_dir": temp, "metrics_port": None, "dashboard_port": None,
                       "dashboard_host": "127.0.0.1"}
    assert token == ""  # the head makes one


def test_dashboard_and_metrics_flags(temp):
    args = cli.build_parser().parse_args(["start", "--head", "--dashboard", "--metrics-port",
                                          "9100"])
    options, _ = cli.daemon_options(args, temp)
    assert (options["dashboard_port"], options["metrics_port"]) == (8265, 9100)
    for bad, message in ((["--address", "10.0.0.1:6379", "--dashboard"], "for the head"),
                         (["--head", "--dashboard-port", "9000"], "needs --dashboard")):
        with pytest.raises(cli.UsageError, match=message):
            cli.daemon_options(cli.build_parser().parse_args(["start", *bad]), temp)


def test_head_flags(temp):
    args = cli.build_parser().parse_args(
        ["start", "--head", "--port", "7000", "--node-ip-address", "10.0.0.5", "--num-cpus", "3",
         "--num-gpus", "1", "--resources", '{"accel": 2}', "--token", "secret"])
    options, token = cli.daemon_options(args, temp)
    assert (options["port"], options["node_ip"], options["num_cpus"], options["num_gpus"],
            options["resources"], token) == (7000, "10.0.0.5", 3.0, 1.0, {"accel": 2.0}, "secret")


def write_cluster_file(temp, address="10.0.0.1:6379", token="file-token", node_ip="10.0.0.2",
                       writer_pid=None):
    cluster_address.ensure_private_dir(temp)
    cluster_address.write_private_json(cluster_address.cluster_file_path(temp), {
        "address": address, "token": token, "node_ip": node_ip, "node_id": "ab" * 8,
        "writer_pid": os.getpid() if writer_pid is None else writer_pid})


def join_options(temp, *extra):
    args = cli.build_parser().parse_args(["start", "--address", "ferry://10.0.0.1:6379", *extra])
    return cli.daemon_options(args, temp)


def test_join_token_comes_from_flag_then_env_then_matching_cluster_file(temp, monkeypatch):
    write_cluster_file(temp)
    options, token = join_options(temp)
    assert token == "file-token"
    assert (options["head"], options["address"], options["node_ip"]) == (False, "10.0.0.1:6379", "")
    monkeypatch.setenv("FERRY_TOKEN", "env-token")
    assert join_options(temp)[1] == "env-token"
    assert join_options(temp, "--token", "flag-token")[1] == "flag-token"


def test_join_without_a_token_says_how_to_give_one(temp):
    write_cluster_file(temp, address="10.9.9.9:6379")  # another cluster's: not used
    with pytest.raises(cli.UsageError, match="no cluster token: pass --token or set FERRY_TOKEN"):
        join_options(temp)


def test_python_m_ferry_runs_the_cli():
    proc = subprocess.run([sys.executable, "-m", "ferry", "start", "--help"], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert "--head" in proc.stdout and "--address" in proc.stdout


# --- the daemon around a fake node, in this process --------------------------


class FakeNode:
    """_core.Node's surface; `script` says what each wait() does."""

    def __init__(self, options, script):
        self.options = options
        self.address = options["address"] or f"{options['node_ip']}:{options['port']}"
        self.token = options["token"] or "made-by-head"
        self.node_id = "cd" * 8
        self.node_ip = options["node_ip"] or "10.0.0.7"
        self.script = list(script)
        self.stopped = False
        self.seen_files = {}

    def wait(self, timeout):
        assert timeout is not None and timeout > 0
        if self.stopped:
            return "stopped"
        action = self.script.pop(0)
        return action(self)

    def stop(self):
        self.stopped = True


def daemon_options(temp, head=True, address=""):
    return {"head": head, "address": address, "port": 6379, "node_ip": "127.0.0.1" if head else "",
            "num_cpus": 2.0, "num_gpus": 0.0, "resources": {"accel": 1.0}, "temp_dir": temp}


def snapshot_files(node):
    """Records the daemon's files (content and mode) while it runs."""
    temp = os.environ["FERRY_TEMP_DIR"]
    for name in os.listdir(temp):
        path = os.path.join(temp, name)
        node.seen_files[name] = (cluster_address.read_json(path), stat.S_IMODE(os.stat(path).st_mode))


def test_head_daemon_announces_itself_and_exits_0_on_sigterm(temp, capsys):
    cluster_address.ensure_private_dir(temp)
    nodes = []

    def start(options):
        nodes.append(FakeNode(options, [
            lambda n: snapshot_files(n),
            lambda n: signal.raise_signal(signal.SIGTERM),  # as `ferry stop` sends it
        ]))
        return nodes[0]

    previous = signal.getsignal(signal.SIGTERM)
    rc = node_daemon.serve(daemon_options(temp), "", start)
    assert rc == 0
    node = nodes[0]
    assert node.options == {"head": True, "address": "", "port": 6379, "node_ip": "127.0.0.1",
                            "token": "", "num_cpus": 2.0, "num_gpus": 0.0,
                            "resources": {"accel": 1.0}, "log_dir": os.path.join(temp, "logs")}
    pid = os.getpid()
    assert node.seen_files == {
        cluster_address.CLUSTER_FILE_NAME: (
            {"address": "127.0.0.1:6379", "token": "made-by-head", "node_ip": "127.0.0.1",
             "node_id": node.node_id, "writer_pid": pid}, 0o600),
        f"node-{pid}.json": ({"pid": pid, "node_id": node.node_id, "address": "127.0.0.1:6379",
                              "head": True, "node_ip": "127.0.0.1"}, 0o600),
    }
    assert os.listdir(temp) == []  # its files are gone with it
    assert signal.getsignal(signal.SIGTERM) is previous
    assert "stopped" in capsys.readouterr().err


def test_daemon_exits_1_with_the_reason_when_its_head_is_lost(temp, capsys):
    cluster_address.ensure_private_dir(temp)
    rc = node_daemon.serve(daemon_options(temp, head=False, address="10.0.0.1:6379"), "tok",
                           lambda options: FakeNode(options, [lambda n: "lost the head at 10.0.0.1:6379"]))
    assert rc == 1
    assert "lost the head at 10.0.0.1:6379" in capsys.readouterr().err
    assert os.listdir(temp) == []


def test_joining_daemon_keeps_the_hosts_cluster_file(temp):
    write_cluster_file(temp, writer_pid=1)
    before = cluster_address.read_cluster_file(temp)
    nodes = []

    def start(options):
        nodes.append(FakeNode(options, [snapshot_files, lambda n: "stopped"]))
        return nodes[0]

    node_daemon.serve(daemon_options(temp, head=False, address="10.0.0.1:6379"), "tok", start)
    assert nodes[0].options["token"] == "tok"
    assert cluster_address.read_cluster_file(temp) == before
    assert f"node-{os.getpid()}.json" in nodes[0].seen_files


def test_joining_daemon_writes_a_missing_cluster_file_and_removes_it(temp):
    cluster_address.ensure_private_dir(temp)
    nodes = []

    def start(options):
        nodes.append(FakeNode(options, [snapshot_files, lambda n: "stopped"]))
        return nodes[0]

    node_daemon.serve(daemon_options(temp, head=False, address="10.0.0.1:6379"), "tok", start)
    written, mode = nodes[0].seen_files[cluster_address.CLUSTER_FILE_NAME]
    assert (written["address"], written["token"], written["node_ip"], mode) == \
        ("10.0.0.1:6379", "tok", "10.0.0.7", 0o600)
    assert os.listdir(temp) == []


def test_daemon_whose_node_fails_to_start_exits_1_and_writes_nothing(temp, capsys):
    cluster_address.ensure_private_dir(temp)

    def start(options):
        raise OSError("cannot bind 127.0.0.1:6379: address in use")

    assert node_daemon.serve(daemon_options(temp), "", start) == 1
    assert "address in use" in capsys.readouterr().err
    assert os.listdir(temp) == []


# --- start and stop with detached daemons --------------------------------------

# A node daemon module for `ferry start` to run: node_daemon.main around a
# fake node whose behaviour FAKE_NODE selects.
FAKE_DAEMON = textwrap.dedent('''
    import os, signal, sys, threading
    from ferry._private import node_daemon

    class Node:
        def __init__(self, options):
            self.address = options["address"] or f"{options['node_ip']}:{options['port']}"
            self.token = options["token"] or "made-by-head"
            self.node_id = format(os.getpid(), "016x")
            self.node_ip = options["node_ip"] or "10.0.0.7"
            self._stopped = threading.Event()
        def wait(self, timeout):
            return "stopped" if self._stopped.wait(timeout) else None
        def stop(self):
            self._stopped.set()

    def start(options):
        mode = os.environ.get("FAKE_NODE", "")
        if mode == "fail":
            raise RuntimeError("cannot bind port 6379: address in use")
        if mode == "hang":  # never ready; dies of SIGTERM
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            threading.Event().wait()
        if mode == "ignore-sigterm":
            node = Node(options)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            return node
        return Node(options)

    if __name__ == "__main__":
        sys.exit(node_daemon.main(start_node=start))
''')


@pytest.fixture
def fake_daemon(tmp_path, temp, monkeypatch):
    """`ferry start` runs the fake daemon module; yields a list the test adds
    daemon pids to (killed if the test fails)."""
    (tmp_path / "fake_node_daemon.py").write_text(FAKE_DAEMON)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setattr(cli, "_DAEMON_MODULE", "fake_node_daemon")
    monkeypatch.delenv("FAKE_NODE", raising=False)
    pids = []
    yield pids
    kill_leftovers(pids)
    for pid in pids:  # the daemons are this process's children here: reap them
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def ready_files(temp):
    return sorted(n for n in os.listdir(temp) if n.startswith("node-"))


def gone(pids):
    return wait_for(lambda: not any(pid_alive(p) for p in pids), EXIT_DEADLINE)


def test_start_head_join_and_stop(temp, fake_daemon, capsys):
    rc, out, err = run_cli(["start", "--head", "--port", "7001", "--num-cpus", "2"], capsys)
    assert rc == 0, err
    assert "127.0.0.1:7001" in out
    assert "ferry start --address 127.0.0.1:7001 --token made-by-head" in out
    assert 'ferry.init(address="127.0.0.1:7001")' in out and "auto" in out and "ferry stop" in out
    cluster = cluster_address.read_cluster_file(temp)
    head_pid = cluster["writer_pid"]
    fake_daemon.append(head_pid)
    assert (cluster["address"], cluster["token"]) == ("127.0.0.1:7001", "made-by-head")
    assert stat.S_IMODE(os.stat(temp).st_mode) == 0o700

    rc, _, err = run_cli(["start", "--head"], capsys)  # one cluster per host and temp dir
    assert rc == 1 and "already running" in err and "ferry stop" in err

    # A second node on this host joins with the token from the cluster file.
    rc, out, err = run_cli(["start", "--address", "127.0.0.1:7001"], capsys)
    assert rc == 0, err
    assert "This node joined the ferry cluster at 127.0.0.1:7001 (node id" in out
    pids = [cluster_address.read_json(os.path.join(temp, n))["pid"] for n in ready_files(temp)]
    fake_daemon.extend(pids)
    assert len(pids) == 2 and head_pid in pids and all(pid_alive(p) for p in pids)
    # The token never appears on a daemon's command line.
    for pid in pids:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert b"made-by-head" not in f.read()

    rc, out, _ = run_cli(["stop"], capsys)
    assert rc == 0
    assert "Stopped 2 ferry node process(es)" in out
    assert gone(pids)
    assert ready_files(temp) == [] and cluster_address.read_cluster_file(temp) is None


def test_start_reports_a_daemon_that_fails_with_its_log(temp, fake_daemon, capsys, monkeypatch):
    monkeypatch.setenv("FAKE_NODE", "fail")
    rc, _, err = run_cli(["start", "--head"], capsys)
    assert rc == 1
    assert "exited with status 1 before it was ready" in err
    assert "cannot bind port 6379: address in use" in err  # from the log's tail
    assert ready_files(temp) == []


def test_start_gives_up_on_a_daemon_that_never_gets_ready(temp, fake_daemon, capsys, monkeypatch):
    monkeypatch.setenv("FAKE_NODE", "hang")
    monkeypatch.setenv("FERRY_START_TIMEOUT_S", "0.5")
    before = set(os.listdir(os.path.join(temp, "logs"))) if os.path.isdir(os.path.join(temp, "logs")) else set()
    rc, _, err = run_cli(["start", "--head"], capsys)
    assert rc == 1
    assert "not ready within 0.5 s" in err
    # The daemon was stopped (and reaped): no process runs that fake module.
    assert not [p for p in os.listdir("/proc") if p.isdigit() and cli_is_fake_daemon(int(p))]
    assert len(set(os.listdir(os.path.join(temp, "logs"))) - before) == 1


def cli_is_fake_daemon(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return b"fake_node_daemon" in argv and pid_alive(pid)


def test_stop_kills_a_daemon_that_ignores_sigterm(temp, fake_daemon, capsys, monkeypatch):
    monkeypatch.setenv("FAKE_NODE", "ignore-sigterm")
    rc, _, err = run_cli(["start", "--head"], capsys)
    assert rc == 0, err
    pid = cluster_address.read_cluster_file(temp)["writer_pid"]
    fake_daemon.append(pid)
    monkeypatch.setenv("FERRY_STOP_TIMEOUT_S", "0.3")
    rc, out, err = run_cli(["stop"], capsys)
    assert rc == 0
    assert "killing it" in err and "Stopped 1 ferry node process(es)" in out
    assert gone([pid])
    assert os.listdir(temp) == ["logs"]  # stop removed what the killed daemon could not


def test_stop_removes_stale_files_and_signals_no_other_process(temp, capsys):
    cluster_address.ensure_private_dir(temp)
    exited = subprocess.Popen(["true"])
    exited.wait()
    for pid in (exited.pid, os.getpid()):  # gone; alive but not a node daemon (this test)
        cluster_address.write_private_json(cluster_address.ready_file_path(temp, pid), {
            "pid": pid, "node_id": "ab", "address": "127.0.0.1:6379", "head": True,
            "node_ip": "127.0.0.1"})
    with open(os.path.join(temp, "node-999999999.json"), "w") as f:
        f.write("{half")
    write_cluster_file(temp, writer_pid=os.getpid())
    rc, out, _ = run_cli(["stop"], capsys)  # this process survives: it was not signalled
    assert rc == 0
    assert "Removed 3 stale ferry node file(s)" in out
    assert "Stopped 0 ferry node process(es)" in out
    assert os.listdir(temp) == []


def test_stop_with_nothing_started(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FERRY_TEMP_DIR", str(tmp_path / "never-made"))
    rc, out, _ = run_cli(["stop"], capsys)
    assert rc == 0 and "No ferry node process is running" in out
    assert not (tmp_path / "never-made").exists()


def test_start_refuses_a_temp_dir_others_can_write(tmp_path, capsys, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    rc, _, err = run_cli(["start", "--head", "--temp-dir", str(shared)], capsys)
    assert rc == 1 and "others can write" in err
