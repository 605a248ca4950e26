#!/usr/bin/env python3
"""Where the time of a small RDT round goes, stage by stage, measured with
ferry's own timers (the timeline every process records, docs/observability.md).

A round is bench/transfer.py's: the driver calls `A.produce.remote(n)` (a
method with `tensor_transport=T` returning a preallocated float32 tensor)
and `B.consume.remote(ref)`, then waits for the consumer's answer. After the
rounds, `ferry.timeline()` gives each process's spans, matched per round by
task id and object id:

  submit -> producer      the driver submitted produce .. it arrived at A
  producer queue          arrived .. started (arguments, earlier tasks)
  producer execute        started .. finished (the method, keeping the tensor, the reply built)
  metadata -> owner       A finished .. the driver had produce's reply (the tensor metadata)
  owner -> consumer args  the driver had the metadata .. B's argument was resolved,
     of which allocate    B allocating the destination
     of which move        the bytes moving (the transport's recv or pull)
  consumer queue          B's argument resolved .. consume started
  consumer execute        consume started .. finished
  reply -> driver         B finished .. the driver had consume's reply
  round                   the driver submitted produce .. had consume's reply

Medians over the rounds (after warm-up rounds), per transport.

    python bench/rdt_breakdown.py                        # 4 KiB, gloo shm auto nixl
    python bench/rdt_breakdown.py --bytes 1048576 --transports auto
    python bench/transfer.py --breakdown                 # the same, from the transfer benchmark
"""
import argparse
import json
import os
import statistics
import sys

import torch

import ferry
from ferry.experimental.collective import create_collective_group

STAGES = ("submit -> producer", "producer queue", "producer execute", "metadata -> owner",
          "owner -> consumer args", "  of which allocate", "  of which move", "consumer queue",
          "consumer execute", "reply -> driver", "round")


@ferry.remote
class Producer:
    def __init__(self):
        self.tensors = {}

    def prepare(self, nbytes):
        self.tensors[nbytes] = torch.ones(nbytes // 4)
        return nbytes

    def produce(self, nbytes):
        return self.tensors[nbytes]


@ferry.remote
class Consumer:
    def consume(self, t):
        return t.numel()


def _rounds(transport, nbytes, warmup, reps):
    """Runs the rounds; returns the hex ids of the timed rounds' objects."""
    a = Producer.options(enable_tensor_transport=True).remote()
    b = Consumer.remote()
    if transport == "gloo":
        create_collective_group([a, b], backend="torch_gloo")
    ferry.get(a.prepare.remote(nbytes), timeout=60)
    produce = a.produce.options(tensor_transport=transport)
    timed = []
    for i in range(warmup + reps):
        ref = produce.remote(nbytes)
        assert ferry.get(b.consume.remote(ref), timeout=60) == nbytes // 4
        if i >= warmup:
            timed.append(ref.hex())
        del ref
    return timed


def _index(events):
    """The timeline's spans: task slices by method (in time order), their
    phases and the calls by task id, the transfer phases by object id."""
    runs = {"produce": [], "consume": []}
    phases, calls, transfers = {}, {}, {}
    for e in events:
        if e["ph"] == "X" and e["tid"] == 1 and e["name"] in runs:
            runs[e["name"]].append(e)
        elif e["ph"] in "be" and e.get("cat") in ("call", "task"):
            name = e["name"].split(":")[0]
            phases.setdefault((e["id2"]["local"], name), {})[e["ph"]] = e["ts"]
        elif e["ph"] == "X" and e["tid"] == 2:
            kind = "allocate" if e["name"].startswith("allocate") else "move"
            transfers.setdefault(e["args"]["object_id"], {})[kind] = e["dur"]
    for spans in runs.values():
        spans.sort(key=lambda e: e["ts"])
    for (task, name), ts in phases.items():
        if name.startswith("call "):
            calls[task] = ts
    return runs, phases, calls, transfers


def breakdown(events, object_ids):
    """Stage -> microseconds, one per timed round whose spans were all found."""
    runs, phases, calls, transfers = _index(events)
    out = {s: [] for s in STAGES}
    n = len(object_ids)
    # Rounds are sequential: the i-th produce pairs with the i-th consume.
    for p, c, oid in zip(runs["produce"][-n:], runs["consume"][-n:], object_ids):
        pcall, ccall = calls.get(p["args"]["task_id"]), calls.get(c["args"]["task_id"])
        if not pcall or not ccall or "e" not in pcall or "e" not in ccall:
            continue

        def phase(task, name, edge, default):
            return phases.get((task["args"]["task_id"], name), {}).get(edge, default)

        p_arrived = phase(p, "waiting for arguments", "b", phase(p, "queued", "b", p["ts"]))
        c_resolved = phase(c, "waiting for arguments", "e", phase(c, "queued", "b", c["ts"]))
        moved = transfers.get(oid, {})
        stages = {
            "submit -> producer": p_arrived - pcall["b"],
            "producer queue": p["ts"] - p_arrived,
            "producer execute": p["dur"],
            "metadata -> owner": pcall["e"] - (p["ts"] + p["dur"]),
            "owner -> consumer args": c_resolved - pcall["e"],
            "  of which allocate": moved.get("allocate", 0),
            "  of which move": moved.get("move", 0),
            "consumer queue": c["ts"] - c_resolved,
            "consumer execute": c["dur"],
            "reply -> driver": ccall["e"] - (c["ts"] + c["dur"]),
            "round": ccall["e"] - pcall["b"],
        }
        for stage, v in stages.items():
            out[stage].append(v)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bytes", type=int, default=4096)
    ap.add_argument("--transports", default="gloo,shm,auto,nixl")
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--reps", type=int, default=300)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "results", "rdt_breakdown.json"))
    args = ap.parse_args(argv)
    transports = args.transports.split(",")
    results = {}
    for transport in transports:
        ferry.init(num_cpus=2)
        try:
            ids = _rounds(transport, args.bytes, args.warmup, args.reps)
            results[transport] = breakdown(ferry.timeline(), ids)
        finally:
            ferry.shutdown()
    width = max(len(s) for s in STAGES) + 2
    print(f"{args.bytes} B per round, median microseconds of {args.reps} rounds "
          f"(after {args.warmup} warm-up rounds), ferry's own timers")
    print(f"{'stage':<{width}}" + "".join(f"{t:>10}" for t in transports))
    for s in STAGES:
        cells = []
        for t in transports:
            samples = results[t][s]
            cells.append(f"{statistics.median(samples):>10.0f}" if samples else f"{'-':>10}")
        print(f"{s:<{width}}" + "".join(cells))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"bytes": args.bytes, "reps": args.reps,
                   "median_us": {t: {s: statistics.median(v) if v else None
                                     for s, v in r.items()} for t, r in results.items()}}, f,
                  indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
