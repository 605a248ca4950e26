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


def _run_driver(tmp_path, script, timeout, env):
    """Runs ``script`` as a driver of its own with ``env`` added (inherited
    by its workers); returns the object it printed after "RESULT "."""
    path = write_script(tmp_path, script)
    full_env = dict(os.environ, **env)
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (TESTS_DIR, full_env.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, cwd=str(tmp_path),
                          env=full_env)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def test_killed_producer_fails_the_consumer_promptly_and_spares_others(tmp_path):
    out = _run_driver(tmp_path, KILL_PRODUCER, timeout=180, env={
        "FERRY_TRANSFER_TIMEOUT_S": str(TRANSFER_TIMEOUT_S),
    })
    assert out["ref_ready"] and out["before"], out
    assert out["error"] is not None, "the consumer of a dead producer's object succeeded"
    assert out["error_is_expected_type"], out
    assert out["elapsed"] < FAIL_BOUND_S, out
    assert out["receiver_alive"], out
    assert out["other_group_works"] and out["other_group_listed"], out


SENDER_DIES_MID_TRANSFER = """
import json
import sys
import time

import ferry
from ferry.experimental.collective import (create_collective_group, destroy_collective_group,
                                           get_collective_groups)

import hardening_actors as H

out = {}
src, sink, spare = H.TensorSource.remote(), H.TensorSink.remote(), H.TensorSink.remote()
ferry.get([a.ping.remote() for a in (src, sink, spare)], timeout=60)
# A collective transport's method on an actor in no group fails at .remote().
try:
    src.make.remote(1 << 20, 1)
    out["no_group_error"] = None
except ValueError as e:
    out["no_group_error"] = str(e)

create_collective_group([src, sink], backend="gloo", name="g")
ref = src.make.remote(4 << 20, 3)
ferry.wait([ref], timeout=60)
# FERRY_FAULT makes the producer exit just before it sends: the receiver
# has posted its receive and waits for bytes that never come.
t0 = time.monotonic()
try:
    ferry.get(sink.check.remote(ref, 3), timeout=120)
    out["error"] = None
except Exception as e:
    out["error"] = type(e).__name__
    out["message"] = str(e)
out["elapsed"] = time.monotonic() - t0
out["listed_after"] = "g" in [g.name for g in get_collective_groups()]
destroy_collective_group("g")  # the user's cleanup is not an error
# The name is free again, with the survivor in it.
create_collective_group([sink, spare], backend="gloo", name="g")
out["recreated"] = "g" in [g.name for g in get_collective_groups()]
out["sink_alive"] = ferry.get(sink.ping.remote(), timeout=60) == "pong"
print("RESULT " + json.dumps(out))
sys.stdout.flush()
"""


def test_a_sender_dying_mid_transfer_fails_the_receiver_at_once_and_frees_the_group_name(tmp_path):
    out = _run_driver(tmp_path, SENDER_DIES_MID_TRANSFER, timeout=240, env={
        "FERRY_FAULT": "transfer.send:exit",
        "FERRY_TRANSFER_TIMEOUT_S": "60",  # the failure must not wait for it
        "FERRY_GLOO_SAME_HOST_PATH": "tcp",  # a send on Gloo's wire (same host: no send)
    })
    assert out["no_group_error"] and "create_collective_group" in out["no_group_error"], out
    assert out["error"] == "ActorDiedError", out
    assert "actor" in out["message"], out
    # Within 2 s of the death being known, plus slack for a loaded machine;
    # far below the 60 s transfer timeout.
    assert out["elapsed"] < 8, out
    assert not out["listed_after"], out
    assert out["recreated"] and out["sink_alive"], out


RECEIVER_DIES_MID_TRANSFER = """
import json
import sys
import time

import ferry
from ferry.experimental.collective import create_collective_group

import hardening_actors as H

out = {}
src, sink = H.TensorSource.remote(), H.TensorSink.remote()
create_collective_group([src, sink], backend="gloo", name="g")
ref = src.make.remote(4 << 20, 3)
ferry.wait([ref], timeout=60)
# FERRY_FAULT makes the receiver exit just before it posts its receive: the
# producer's send waits for a peer that is gone.
t0 = time.monotonic()
try:
    ferry.get(sink.check.remote(ref, 3), timeout=120)
    out["error"] = None
except Exception as e:
    out["error"] = type(e).__name__
out["elapsed"] = time.monotonic() - t0
deadline = time.monotonic() + 30
errors = []
while not errors and time.monotonic() < deadline:
    errors = ferry.get(src.transfer_errors.remote(), timeout=60)
out["send_aborted_after"] = time.monotonic() - t0 if errors else None
out["send_error"] = errors[0] if errors else None
out["producer_alive"] = ferry.get(src.ping.remote(), timeout=60) == "pong"
print("RESULT " + json.dumps(out))
sys.stdout.flush()
"""


def test_a_receiver_dying_mid_transfer_aborts_the_senders_posted_send(tmp_path):
    out = _run_driver(tmp_path, RECEIVER_DIES_MID_TRANSFER, timeout=240, env={
        "FERRY_FAULT": "transfer.recv:exit",
        "FERRY_TRANSFER_TIMEOUT_S": "60",
        "FERRY_GLOO_SAME_HOST_PATH": "tcp",  # a posted send on Gloo's wire to abort
    })
    assert out["error"] == "ActorDiedError" and out["elapsed"] < 8, out
    # The send is aborted when the death is known, not at the 60 s timeout.
    assert out["send_aborted_after"] is not None and out["send_aborted_after"] < 8, out
    assert out["producer_alive"], out
