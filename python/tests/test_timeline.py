"""ferry.timeline(): the tasks, calls and transfers of every process of the
session as Chrome trace events, one row per process, with arrows from each
call to the task it ran and from a producing task to the transfer of its
tensors."""
import json

import pytest

import ferry
from ferry.experimental.collective import create_collective_group
from rdt_test_actors import GlooStage


def _by_phase(events, phase):
    return [e for e in events if e["ph"] == phase]


def test_timeline_has_a_row_per_process_with_tasks_calls_transfers_and_arrows(ferry_session,
                                                                               tmp_path):
    producer, consumer = GlooStage.remote(), GlooStage.remote()
    create_collective_group([producer, consumer], backend="torch_gloo")
    ref = producer.produce.remote(50_000)  # 200 KB: over gloo
    assert ferry.get(consumer.consume.remote(ref), timeout=60) == 50_000.0
    assert ferry.get([producer.ping.remote() for _ in range(3)], timeout=60) == ["pong"] * 3

    events = ferry.timeline()
    rows = {e["pid"]: e["args"]["name"] for e in events if e["name"] == "process_name"}
    assert len(rows) == 3, rows
    assert sum(name.startswith("driver pid=") for name in rows.values()) == 1
    assert sum(name.startswith("GlooStage pid=") for name in rows.values()) == 2
    tracks = {(e["pid"], e["args"]["name"]) for e in events if e["name"] == "thread_name"}
    assert {name for _, name in tracks} == {"tasks", "transfers", "calls"}

    slices = _by_phase(events, "X")
    tasks = [e for e in slices if e["tid"] == 1]
    assert sorted(e["name"] for e in tasks).count("ping") == 3
    assert {"__init__", "produce", "consume"} <= {e["name"] for e in tasks}
    assert all(e["dur"] >= 1 and e["ts"] > 0 for e in slices)
    # Every call the driver made starts an arrow that ends at the task it ran.
    starts = {e["id"] for e in _by_phase(events, "s") if e["cat"] == "call"}
    ends = {e["id"] for e in _by_phase(events, "f") if e["cat"] == "call"}
    calls = [e for e in slices if e["tid"] == 3]
    assert len(calls) >= 5 and len(starts) == len(calls)
    assert starts <= ends
    # The transfer ended in the consumer, with an arrow from the producing task.
    [transfer] = [e for e in slices if e["tid"] == 2 and e["name"].startswith("recv")]
    assert transfer["args"]["bytes"] == 200_000 and transfer["args"]["error"] == ""
    [produce] = [e for e in tasks if e["name"] == "produce"]
    data_start = [e for e in _by_phase(events, "s") if e["cat"] == "data"]
    data_end = [e for e in _by_phase(events, "f") if e["cat"] == "data"]
    assert [e["pid"] for e in data_start] == [produce["pid"]]
    assert [e["pid"] for e in data_end] == [transfer["pid"]] != [produce["pid"]]
    assert data_start[0]["id"] == data_end[0]["id"]
    assert data_start[0]["args"]["key"] == transfer["args"]["object_id"]
    assert all(isinstance(e["id"], int) for e in data_start + data_end)  # 64-bit for viewers
    # A phase before the move: allocating the destination (when it took a
    # microsecond or more), ending where the move starts.
    for alloc in [e for e in slices if e["tid"] == 2 and e["name"].startswith("allocate")]:
        assert alloc["pid"] == transfer["pid"]
        assert alloc["ts"] + alloc["dur"] == pytest.approx(transfer["ts"], abs=1)
    # The consumer's task waited for its argument while the tensors moved.
    waits = [e for e in _by_phase(events, "b") if e["name"] == "waiting for arguments: consume"]
    assert len(waits) == 1 and waits[0]["pid"] == transfer["pid"]

    path = tmp_path / "trace.json"
    assert ferry.timeline(str(path)) is None
    written = json.loads(path.read_text())
    assert written["displayTimeUnit"] == "ms"
    assert len(written["traceEvents"]) >= len(events)


def test_timeline_recording_can_be_turned_off(tmp_path):
    from conftest import run_script
    out = run_script(tmp_path, """
        import os
        os.environ["FERRY_TIMELINE_SIZE"] = "0"
        import ferry

        @ferry.remote
        class A:
            def ping(self):
                return 1

        ferry.init()
        a = A.remote()
        assert ferry.get(a.ping.remote(), timeout=60) == 1
        events = ferry.timeline()
        assert not [e for e in events if e["ph"] == "X"], events
        assert len([e for e in events if e["name"] == "process_name"]) == 2
        ferry.shutdown()
        print("OK")
        """)
    assert out.returncode == 0 and out.stdout.strip() == "OK", out.stderr
