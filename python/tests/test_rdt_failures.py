"""System errors of the direct tensor transport: the
producer of an RDT object dies before its ref is passed on.

Runs as a separate driver so that FERRY_TRANSFER_TIMEOUT_S (read by the
driver and inherited by its workers) can be small without touching the rest
of the suite, and so that killing actors cannot disturb other modules.
"""
import json
import os
import subprocess
import sys

from conftest import TESTS_DIR, write_script

TRANSFER_TIMEOUT_S = 5
# The dependent task must fail within the transfer timeout (plus slack for a
# loaded machine), never hang.
FAIL_BOUND_S = TRANSFER_TIMEOUT_S + 10

KILL_PRODUCER = """
import json
import sys
import time

import ferry
from ferry.experimental.collective import create_collective_group, get_collective_groups

import rdt_test_actors as rdt

out = {}
victim, receiver = rdt.Producer.remote(), rdt.Receiver.remote()
other_p, other_r = rdt.Producer.remote(), rdt.Receiver.remote()
create_collective_group([victim, receiver], backend="gloo", name="victim_group")
create_collective_group([other_p, other_r], backend="gloo", name="other_group")

want = float(rdt.make_value("single", 3).double().sum())
ref = victim.make.remote("single", 3)
ready, _ = ferry.wait([ref], timeout=60)
out["ref_ready"] = bool(ready)
# A transfer works before the kill.
out["before"] = ferry.get(receiver.sum.remote(ref), timeout=60) == want

ferry.kill(victim)
t0 = time.monotonic()
consumer = receiver.sum.remote(ref)
try:
    ferry.get(consumer, timeout=60)
    out["error"] = None
except Exception as e:
    out["error"] = type(e).__name__
    out["error_is_expected_type"] = isinstance(
        e, (ferry.exceptions.ActorDiedError, ferry.exceptions.TransportError))
    out["message"] = str(e)
out["elapsed"] = time.monotonic() - t0

# The receiver, and an unrelated pair with its own group, keep working.
out["receiver_alive"] = ferry.get(receiver.ping.remote(), timeout=60) == "pong"
ref2 = other_p.make.remote("dict", 4)
got = ferry.get(other_r.describe.remote(ref2), timeout=60)
out["other_group_works"] = got == rdt.describe(rdt.make_value("dict", 4))
out["other_group_listed"] = "other_group" in [g.name for g in get_collective_groups()]
print("RESULT " + json.dumps(out))
sys.stdout.flush()
"""


def test_killed_producer_fails_the_consumer_promptly_and_spares_others(tmp_path):
    path = write_script(tmp_path, KILL_PRODUCER)
    env = dict(os.environ)
    env["FERRY_TRANSFER_TIMEOUT_S"] = str(TRANSFER_TIMEOUT_S)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (TESTS_DIR, env.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL, cwd=str(tmp_path), env=env)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["ref_ready"] and out["before"], out
    assert out["error"] is not None, "the consumer of a dead producer's object succeeded"
    assert out["error_is_expected_type"], out
    assert out["elapsed"] < FAIL_BOUND_S, out
    assert out["receiver_alive"], out
    assert out["other_group_works"] and out["other_group_listed"], out
