"""What workers print: each line reaches the driver's terminal prefixed with
the worker's name and pid, as Ray's do ("(Printer pid=1234) hello"), stdout
to stdout and stderr to stderr; it is also kept in per-worker log files in
the session directory; FERRY_LOG_TO_DRIVER=0 stops the streaming (the files
stay); and an actor that crashes has its last lines in its ActorDiedError.

Each case runs a fresh driver script, so the terminal is the script's real
stdout and stderr."""
import glob
import os
import re
import subprocess
import sys

import pytest

from conftest import write_script

SCRIPT = """
import os
import sys

import ferry

ferry.init()


@ferry.remote
class Printer:
    def say(self, text):
        print(text)
        print("err:" + text, file=sys.stderr)
        return os.getpid()

    def die(self):
        print("about to fail: disk full", file=sys.stderr)
        os._exit(3)


@ferry.remote
def shout(text):
    print(text.upper())
    return os.getpid()


p = Printer.remote()
pid = ferry.get(p.say.remote("hello from the actor"), timeout=60)
task_pid = ferry.get(shout.remote("hello from a task"), timeout=60)
print(f"PIDS {pid} {task_pid}", flush=True)
if "CRASH" in os.environ:
    try:
        ferry.get(p.die.remote(), timeout=60)
    except ferry.exceptions.ActorDiedError as e:
        print("DIED " + str(e).replace("\\n", " | "), flush=True)
ferry.shutdown()
"""


def _run(tmp_path, **env):
    path = write_script(tmp_path, SCRIPT, "printing_driver.py")
    full_env = dict(os.environ, FERRY_TEMP_DIR=str(tmp_path / "ferry"), **env)
    proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          timeout=180, stdin=subprocess.DEVNULL, cwd=str(tmp_path), env=full_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    pids = re.search(r"^PIDS (\d+) (\d+)$", proc.stdout, re.M)
    assert pids, proc.stdout
    return proc, int(pids.group(1)), int(pids.group(2))


def test_worker_lines_reach_the_driver_prefixed_and_stay_in_log_files(tmp_path):
    proc, pid, task_pid = _run(tmp_path)
    # Stdout to stdout, stderr to stderr, each with Ray's prefix. Every line
    # is in before the driver's shutdown returns.
    assert f"(Printer pid={pid}) hello from the actor\n" in proc.stdout, proc.stdout
    assert f"(Printer pid={pid}) err:hello from the actor\n" in proc.stderr, proc.stderr
    assert f"(shout pid={task_pid}) HELLO FROM A TASK\n" in proc.stdout, proc.stdout
    assert "err:hello" not in proc.stdout
    # Log files under the session dir, one pair per worker, named like Ray's.
    logs = glob.glob(str(tmp_path / "ferry" / "session-*" / "logs" / f"worker-*-{pid}.out"))
    assert len(logs) == 1, os.listdir(tmp_path / "ferry")
    with open(logs[0]) as f:
        assert f.read() == "hello from the actor\n"
    with open(logs[0][:-len(".out")] + ".err") as f:
        assert "err:hello from the actor\n" in f.read()
    task_log = glob.glob(str(tmp_path / "ferry" / "session-*" / "logs" / f"worker-*-{task_pid}.out"))
    with open(task_log[0]) as f:
        assert "HELLO FROM A TASK\n" in f.read()  # the name marker is not in the file
    assert "\x1e" not in proc.stdout + proc.stderr


def test_log_to_driver_off_keeps_the_output_in_files_only(tmp_path):
    proc, pid, _ = _run(tmp_path, FERRY_LOG_TO_DRIVER="0")
    assert "hello from the actor" not in proc.stdout + proc.stderr
    logs = glob.glob(str(tmp_path / "ferry" / "session-*" / "logs" / f"worker-*-{pid}.out"))
    with open(logs[0]) as f:
        assert f.read() == "hello from the actor\n"


def test_a_crashed_actor_reports_its_last_lines_in_the_actor_died_error(tmp_path):
    proc, pid, _ = _run(tmp_path, CRASH="1")
    died = re.search(r"^DIED (.*)$", proc.stdout, re.M)
    assert died, proc.stdout + proc.stderr
    message = died.group(1)
    assert "exited with code 3" in message, message
    assert "its last output:" in message and "about to fail: disk full" in message, message
    # and the line was streamed as it was printed
    assert f"(Printer pid={pid}) about to fail: disk full" in proc.stderr


@pytest.mark.parametrize("mode", [0o777, 0o757])
def test_a_temp_dir_others_can_write_gets_no_log_files_but_output_still_streams(tmp_path, mode):
    temp = tmp_path / "ferry"
    temp.mkdir()
    temp.chmod(mode)
    proc, pid, _ = _run(tmp_path)
    assert f"(Printer pid={pid}) hello from the actor" in proc.stdout
    assert not glob.glob(str(temp / "session-*" / "logs" / "worker-*"))
    assert "worker output is not kept in files" in proc.stderr
