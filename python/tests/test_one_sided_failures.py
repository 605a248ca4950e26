"""Failures of the one-sided transports: a producer that dies before its
tensors are pulled, a consumer that dies while pulling, and a pull that
fails. Each time the dependent call raises a typed error within the transfer
timeout, and the consumer (or producer) that survived stays usable —
one-sided transports have no group to tear down.

Each scenario runs as its own driver so that FERRY_TRANSFER_TIMEOUT_S can be
small and FERRY_FAULT reaches only the chosen actor.
"""
import pytest

from conftest import run_fault_driver

TRANSFER_TIMEOUT_S = 5
FAIL_BOUND_S = TRANSFER_TIMEOUT_S + 10

DRIVER = """
import json, os, sys, time
import ferry
import rdt_test_actors as rdt

SCENARIO, TRANSPORT = sys.argv[1], sys.argv[2]
FAULT = {
    "producer_dead_before_pull": (None, None),
    "put_owner_dead_before_get": (None, None),
    "consumer_dies_in_pull": ("consumer", "transfer.pull:exit"),
    "pull_fails": ("consumer", "transfer.pull:error"),
}[SCENARIO]
out = {"scenario": SCENARIO}

def start(cls, role):
    if FAULT[0] == role:
        os.environ["FERRY_FAULT"] = FAULT[1]
    try:
        return cls.remote()
    finally:
        os.environ.pop("FERRY_FAULT", None)

producer, consumer = start(rdt.Producer, "producer"), start(rdt.Receiver, "consumer")
bystander = rdt.Receiver.remote()
ferry.get([producer.ping.remote(), consumer.ping.remote(), bystander.ping.remote()], timeout=60)
out["pids"] = ferry._private.runtime.current().worker_pids()
want = float(rdt.make_value("single", 3).double().sum())

if SCENARIO == "put_owner_dead_before_get":
    [ref] = ferry.get(producer.put_value.remote("single", TRANSPORT, 3), timeout=60)
else:
    ref = producer.make_plain.options(tensor_transport=TRANSPORT).remote("single", 3)
    ferry.wait([ref], timeout=60)
if SCENARIO in ("producer_dead_before_pull", "put_owner_dead_before_get"):
    ferry.kill(producer)

t0 = time.monotonic()
try:
    if SCENARIO == "put_owner_dead_before_get":
        ferry.get(ref, timeout=60)
    else:
        ferry.get(consumer.sum.remote(ref), timeout=60)
    out["error"] = None
except Exception as e:
    out["error"] = type(e).__name__
    out["typed"] = isinstance(e, (ferry.exceptions.ActorDiedError, ferry.exceptions.TransportError,
                                  ferry.exceptions.ObjectLostError))
    out["message"] = str(e)[:500]
out["elapsed"] = time.monotonic() - t0

def alive(h):
    try:
        return ferry.get(h.ping.remote(), timeout=30) == "pong"
    except Exception:
        return False

out["consumer_alive"] = alive(consumer)
out["producer_alive"] = alive(producer)
# A fresh object from a live producer still moves to an unrelated actor.
src = producer if out["producer_alive"] else rdt.Producer.remote()
fresh = src.make_plain.options(tensor_transport=TRANSPORT).remote("single", 3)
out["bystander_ok"] = abs(ferry.get(bystander.sum.remote(fresh), timeout=60) - want) < 1e-3
print(json.dumps(out), flush=True)
ferry.shutdown()
"""


def _run(tmp_path, scenario, transport):
    return run_fault_driver(tmp_path, DRIVER, [scenario, transport], TRANSFER_TIMEOUT_S)


@pytest.mark.parametrize("transport", ["nixl", "shm"])
@pytest.mark.parametrize("scenario,expected,consumer_survives", [
    ("producer_dead_before_pull", {"ActorDiedError", "TransportError"}, True),
    ("put_owner_dead_before_get", {"ActorDiedError", "TransportError", "ObjectLostError"}, True),
    ("consumer_dies_in_pull", {"ActorDiedError"}, False),
    ("pull_fails", {"TransportError"}, True),
])
def test_one_sided_failure_is_typed_prompt_and_contained(tmp_path, transport, scenario, expected,
                                                        consumer_survives):
    out = _run(tmp_path, scenario, transport)
    assert out["error"] is not None, f"the dependent call succeeded: {out}"
    assert out["error"] in expected and out["typed"], out
    assert out["elapsed"] < FAIL_BOUND_S, out
    assert out["consumer_alive"] == consumer_survives, out
    if scenario in ("consumer_dies_in_pull", "pull_fails"):
        assert out["producer_alive"], out
    assert out["bystander_ok"], out
