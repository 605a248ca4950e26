"""Faults mid-transfer, made deterministic with the
FERRY_FAULT hook (src/ferry/common/fault.h): a worker whose environment has
FERRY_FAULT=<point>:exit dies at exactly that point, like a SIGKILL there.

Each scenario runs as its own driver so FERRY_TRANSFER_TIMEOUT_S can be small
and FERRY_FAULT reaches only the chosen actor (workers take the driver's
environment at spawn time). The driver reports what it saw as JSON; the test
checks: the dependent call raised a typed error within the bound (no hang),
a group involved reports that it was destroyed, an unrelated pair and group
keep working, no worker process outlives the driver, and /dev/shm holds no
ferry file.
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import (EXIT_DEADLINE, TESTS_DIR, all_gone, kill_leftovers, run_fault_driver, shm_entries,
                      wait_for, write_script)

TRANSFER_TIMEOUT_S = 5
FAIL_BOUND_S = TRANSFER_TIMEOUT_S + 10
N = 1 << 20  # 4 MiB of float32: past the inline path

DRIVER = """
import json, os, sys, time
import ferry
from ferry.experimental.collective import create_collective_group, get_collective_groups
import fault_test_actors as fa

SCENARIO = sys.argv[1]
FAULT = {
    "producer_before_return": ("producer", "task.return:exit"),
    "producer_during_send": ("producer", "transfer.send:exit"),
    "consumer_during_receive": ("consumer", "transfer.recv:exit"),
    "producer_after_return": (None, None),
}[SCENARIO]
out = {"scenario": SCENARIO}

def start(role):
    if FAULT[0] == role:
        os.environ["FERRY_FAULT"] = FAULT[1]
    try:
        return fa.Node.remote()
    finally:
        os.environ.pop("FERRY_FAULT", None)

producer, consumer = start("producer"), start("consumer")
other_p, other_c = fa.Node.remote(), fa.Node.remote()
# No task may run on the faulty actor before the scenario (its fault point
# may be task.return): the pids come from the Head.
create_collective_group([producer, consumer], backend="gloo", name="g")
out["pids"] = ferry._private.runtime.current().worker_pids()
create_collective_group([other_p, other_c], backend="gloo", name="other")

ref = producer.make.remote({N})
if SCENARIO == "producer_after_return":
    ferry.wait([ref], timeout=60)
    ferry.kill(producer)
t0 = time.monotonic()
try:
    ferry.get(consumer.consume.remote(ref), timeout=120)
    out["error"] = None
except Exception as e:
    out["error"] = type(e).__name__
    out["message"] = str(e)[:500]
out["elapsed"] = time.monotonic() - t0

# The surviving member of group "g" reports that the group was destroyed.
survivor = consumer if SCENARIO.startswith("producer") else producer
try:
    out["survivor_alive"] = ferry.get(survivor.ping.remote(), timeout=30) == "pong"
except Exception as e:
    out["survivor_alive"] = False
if SCENARIO in ("producer_during_send", "consumer_during_receive"):
    # A new transfer on the survivor's side of "g" fails with a clear error.
    src, dst = (survivor, other_c) if SCENARIO == "consumer_during_receive" else (other_p, survivor)
    try:
        # The owner forgot the destroyed group: a gloo method of its
        # survivor is refused at .remote(), naming create_collective_group.
        probe = survivor.make.remote({N})
        peer = producer if survivor is consumer else consumer
        ferry.get(peer.consume.remote(probe), timeout=FAIL)
        out["group_error"] = None
    except Exception as e:
        out["group_error"] = type(e).__name__
    out["groups_left"] = [g.name for g in get_collective_groups()]
# Unrelated actors and their group keep working.
out["other_sum"] = ferry.get(other_c.consume.remote(other_p.make.remote({N})), timeout=60)
print(json.dumps(out), flush=True)
ferry.shutdown()
"""


def _run(tmp_path, scenario):
    body = DRIVER.replace("{N}", str(N)).replace("timeout=FAIL", f"timeout={FAIL_BOUND_S + 30}")
    # Two ranks on one host read the producer's memory without a send: the
    # producer's send happens on Gloo's wire only.
    env = {"FERRY_GLOO_SAME_HOST_PATH": "tcp"} if scenario == "producer_during_send" else None
    return run_fault_driver(tmp_path, body, [scenario], TRANSFER_TIMEOUT_S, env=env)


@pytest.mark.parametrize("scenario,expected", [
    ("producer_before_return", {"ActorDiedError"}),
    ("producer_after_return", {"ActorDiedError", "TransportError"}),
    ("producer_during_send", {"TransportError", "ActorDiedError"}),
    ("consumer_during_receive", {"ActorDiedError"}),
])
def test_fault_fails_dependents_with_a_typed_error_in_bounded_time(tmp_path, scenario, expected):
    out = _run(tmp_path, scenario)
    assert out["error"] in expected, out
    assert out["elapsed"] < FAIL_BOUND_S, out
    assert out["survivor_alive"], out
    assert out["other_sum"] == float(N), out
    if scenario in ("producer_during_send", "consumer_during_receive"):
        # The group lost a member mid-transfer: it is destroyed everywhere
        # and the owner forgot it, so using it again is refused at once.
        assert out["group_error"] == "ValueError", out
        assert out["groups_left"] == ["other"], out


DRIVER_KILLED = """
import json, sys
import ferry
from ferry.experimental.collective import create_collective_group
import fault_test_actors as fa

p, c = fa.Node.remote(), fa.Node.remote()
pids = ferry.get([p.pid.remote(), c.pid.remote()], timeout=60)
create_collective_group([p, c], backend="gloo")
# Keep transfers going while the test kills this driver.
refs = [c.consume.remote(p.make.remote(1 << 24)) for _ in range(50)]
print(json.dumps(pids), flush=True)
ferry.get(refs, timeout=600)
"""


def test_driver_sigkilled_during_transfers_leaves_nothing_behind(tmp_path):
    path = write_script(tmp_path, DRIVER_KILLED)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]))
    before = shm_entries()
    proc = subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE, text=True, env=env,
                            stdin=subprocess.DEVNULL, cwd=str(tmp_path))
    pids = []
    try:
        line = proc.stdout.readline()
        pids = json.loads(line)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert wait_for(lambda: all_gone(pids), EXIT_DEADLINE), "workers outlived a SIGKILLed driver"
    finally:
        if proc.poll() is None:
            proc.kill()
        kill_leftovers(pids)
    assert not {e for e in shm_entries() - before if "ferry" in e}
