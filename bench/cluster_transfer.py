#!/usr/bin/env python3
"""Cross-host transfer benchmark: ferry gloo, nixl and object_store between two
namespace hosts, beside raw TCP over the same veth link, in one run.

Needs root: it makes two hosts with scripts/netns-cluster.sh (ferry-h1 and
ferry-h2, 10.213.0.11 and .12, one veth pair each on a bridge in its own
namespace; docs/cluster.md), and removes them at the end. It cannot run while
the cluster tests hold the same hosts.

For float32 CPU tensors of 1, 16 and 256 MiB (1 GB = 1e9 bytes; medians over
reps after warm-up reps):

* raw TCP  -- the receiver (bench/raw_tcp.py) in h2 reads each payload with
              recv_into into one warm buffer and answers with its last byte;
              the sender in h1 times its 8-byte length + sendall of a
              preallocated buffer + that answer. Run before and after ferry's
              columns; the samples of both runs are pooled.
* ferry X  -- a cluster on the two hosts (head on h1, a node on h2); the driver
              on h1; actor A pinned to h1 returns a preallocated tensor from
              its plain method (object_store) or from one marked
              ``tensor_transport="gloo"`` / ``"nixl"``; actor B pinned to h2
              has ``consume(t) -> t.numel()``; the driver times
              ``ferry.get(B.consume.remote(A.produce.remote(n)))`` end to end
              (two calls plus the transfer), as bench/transfer.py does on one
              host. gloo uses ``create_collective_group([A, B], backend="gloo")``.

Buffers are warm: the producers' tensors are preallocated and touched, the raw
TCP receiver reuses one buffer, ferry's receive pool reuses memory. Once per
size and transport, before timing, B checks a fresh fill value end to end.

Prints a table (size, transport, median seconds, GB/s, ratio to raw TCP) and
writes bench/results/cluster_transfer.json. Exits non-zero if a column failed
(its cells read n/a, with the error below the table); says it skipped, and
exits 0, where namespace hosts cannot be made (not root).

    sudo .venv/bin/python bench/cluster_transfer.py            # ~2-3 minutes on 2 cores
    sudo .venv/bin/python bench/cluster_transfer.py --quick    # fewer reps
    sudo .venv/bin/python bench/cluster_transfer.py --only raw # the raw TCP baseline alone
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# The namespace-host harness the cluster tests use (plain Python, no pytest).
sys.path.insert(0, os.path.join(ROOT, "python", "tests"))
from cluster.netns import ClusterError, FerryCluster, NetnsHosts, NetnsUnavailable, host_ip  # noqa: E402

MiB = 1 << 20
SIZES = (1 * MiB, 16 * MiB, 256 * MiB)
TRANSPORTS = ("gloo", "nixl", "object_store")
RAW_PORT = 7100
RAW_TIMEOUT_S = 300
FERRY_TIMEOUT_S = 900
HOSTS = ("h1", "h2")  # sender / producer on h1, receiver / consumer on h2


def _params(quick):
    if quick:
        return {"warmup": {1 * MiB: 3, 16 * MiB: 1, 256 * MiB: 1},
                "reps": {1 * MiB: 10, 16 * MiB: 5, 256 * MiB: 3}}
    return {"warmup": {1 * MiB: 10, 16 * MiB: 3, 256 * MiB: 1},
            "reps": {1 * MiB: 50, 16 * MiB: 15, 256 * MiB: 5}}


def _label(n):
    return f"{n // MiB} MiB"


# ---------------------------------------------------------------- raw TCP ----

def run_raw_tcp(hosts, params):
    """{size: [seconds]} from bench/raw_tcp.py, receiver in h2, sender in h1."""
    raw = os.path.join(HERE, "raw_tcp.py")
    recv_ip = host_ip(HOSTS[1])
    receiver = subprocess.Popen(
        hosts.command(HOSTS[1], [sys.executable, raw, "recv", "--bind", recv_ip,
                                 "--port", str(RAW_PORT), "--max-bytes", str(max(SIZES))]),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        sender = subprocess.run(
            hosts.command(HOSTS[0], [
                sys.executable, raw, "send", "--connect", recv_ip, "--port", str(RAW_PORT),
                "--sizes", ",".join(str(n) for n in SIZES),
                "--warmup", ",".join(str(params["warmup"][n]) for n in SIZES),
                "--reps", ",".join(str(params["reps"][n]) for n in SIZES)]),
            capture_output=True, text=True, timeout=RAW_TIMEOUT_S, stdin=subprocess.DEVNULL)
        if sender.returncode != 0:
            raise RuntimeError(f"raw TCP sender failed ({sender.returncode}):\n{sender.stderr[-3000:]}")
        samples = json.loads(sender.stdout.strip().splitlines()[-1])
        out = {n: samples[str(n)] for n in SIZES}
        receiver.wait(timeout=30)
        if receiver.returncode != 0:
            raise RuntimeError(f"raw TCP receiver failed ({receiver.returncode}):\n"
                               f"{receiver.stderr.read()[-3000:]}")
        return out
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait(10)


# ------------------------------------------------------------------ ferry ----

FERRY_DRIVER = r'''
import json
import os
import time

import torch
import ferry
from ferry.experimental.collective import create_collective_group
from driver_lib import connect, emit, error, pinned

P = json.loads(os.environ["BENCH_PARAMS"])
GET_TIMEOUT_S = 300.0
connect()


@ferry.remote
class Producer:
    def __init__(self):
        self.t = {}

    def prepare(self, nbytes, fill):
        self.t[nbytes] = torch.full((nbytes // 4,), fill, dtype=torch.float32)
        return nbytes

    def produce(self, nbytes):
        return self.t[nbytes]

    @ferry.method(tensor_transport="gloo")
    def produce_gloo(self, nbytes):
        return self.t[nbytes]

    @ferry.method(tensor_transport="nixl")
    def produce_nixl(self, nbytes):
        return self.t[nbytes]

    def hostname(self):
        import socket
        return socket.gethostname()


@ferry.remote
class Consumer:
    def consume(self, t):
        return t.numel()

    def check(self, t):
        return t.numel(), float(t[0]), float(t[-1])

    def hostname(self):
        import socket
        return socket.gethostname()


a = pinned(Producer, "h1").remote()
b = pinned(Consumer, "h2").remote()
where = ferry.get([a.hostname.remote(), b.hostname.remote()], timeout=GET_TIMEOUT_S)
group = None
results, errors = {}, {}
fill = 1.0
for n in P["sizes"]:
    for transport in P["transports"]:
        key = f"{transport}/{n}"
        try:
            if transport == "gloo" and group is None:
                group = create_collective_group([a, b], backend="gloo")
            produce = a.produce if transport == "object_store" else getattr(a, "produce_" + transport)
            fill += 1.0
            assert ferry.get(a.prepare.remote(n, fill), timeout=GET_TIMEOUT_S) == n
            got = ferry.get(b.check.remote(produce.remote(n)), timeout=GET_TIMEOUT_S)
            if tuple(got) != (n // 4, fill, fill):
                raise AssertionError(f"consumer saw {got}, want {(n // 4, fill, fill)}")
            samples = []
            warmup, reps = P["warmup"][str(n)], P["reps"][str(n)]
            for i in range(warmup + reps):
                t0 = time.perf_counter()
                m = ferry.get(b.consume.remote(produce.remote(n)), timeout=GET_TIMEOUT_S)
                dt = time.perf_counter() - t0
                if m != n // 4:
                    raise AssertionError(f"consumer saw {m} elements, want {n // 4}")
                if i >= warmup:
                    samples.append(dt)
            results[key] = samples
        except Exception as e:
            errors[key] = error(e)
emit({"results": results, "errors": errors, "where": where})
'''


def run_ferry(hosts, params, log_dir):
    """({"transport/size": [seconds]}, {"transport/size": error}, hostnames of A and B)."""
    cluster = FerryCluster(hosts, log_dir, num_cpus=4)
    try:
        cluster.start()
        bench_params = {"sizes": list(SIZES), "transports": list(TRANSPORTS),
                        "warmup": {str(n): v for n, v in params["warmup"].items()},
                        "reps": {str(n): v for n, v in params["reps"].items()}}
        out = cluster.driver_json(HOSTS[0], FERRY_DRIVER, timeout=FERRY_TIMEOUT_S,
                                  env={"BENCH_PARAMS": json.dumps(bench_params)})
    except BaseException:
        try:
            cluster.stop()  # cleans up; the first error is the one to report
        except ClusterError:
            pass
        raise
    cluster.stop()  # ClusterError if a process or shared memory outlived `ferry stop`
    return out["results"], out["errors"], out["where"]


# ----------------------------------------------------------------- report ----

def _summ(nbytes, samples):
    med = statistics.median(samples)
    return {"median_s": med, "gbps": nbytes / med / 1e9, "reps": len(samples),
            "min_s": min(samples), "max_s": max(samples)}


def table(results, transports):
    lines = [f"{'size':>8}  {'transport':<13} {'median s':>10} {'GB/s':>7} {'vs raw TCP':>10}"]
    for n in SIZES:
        raw = results.get(f"raw_tcp/{n}")
        for transport in ("raw_tcp",) + tuple(transports):
            r = results.get(f"{transport}/{n}")
            name = "raw TCP" if transport == "raw_tcp" else transport
            if r is None:
                lines.append(f"{_label(n):>8}  {name:<13} {'n/a':>10} {'n/a':>7} {'n/a':>10}")
                continue
            ratio = f"{r['gbps'] / raw['gbps']:.2f}x" if raw else "n/a"
            lines.append(f"{_label(n):>8}  {name:<13} {r['median_s']:>10.5f} {r['gbps']:>7.2f} "
                         f"{ratio:>10}")
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer reps")
    ap.add_argument("--only", choices=("raw", "all"), default="all",
                    help="raw: the raw TCP baseline alone (no ferry cluster)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "cluster_transfer.json"))
    args = ap.parse_args(argv)
    p = _params(args.quick)
    hosts = NetnsHosts(len(HOSTS))
    try:
        hosts.up()
    except NetnsUnavailable as e:
        # Not a failure of a baseline or of ferry: this machine cannot run the benchmark.
        print(f"cluster_transfer: skipped, it needs network-namespace hosts: {e}")
        return 0
    t_start = time.monotonic()
    load_start = os.getloadavg()
    print(f"cluster transfer bench ({'quick' if args.quick else 'full'}), {HOSTS[0]} "
          f"({host_ip(HOSTS[0])}) -> {HOSTS[1]} ({host_ip(HOSTS[1])}) over veth; "
          f"load avg {load_start[0]:.2f}", flush=True)
    samples, errors, where = {}, {}, None
    try:
        raw_runs = []
        try:
            raw_runs.append(run_raw_tcp(hosts, p))
            print("  raw TCP (before ferry): done", flush=True)
        except Exception as e:
            errors["raw_tcp"] = f"{type(e).__name__}: {e}"
            traceback.print_exc()
        if args.only == "all":
            log_dir = tempfile.mkdtemp(prefix="ferry-cluster-bench-")
            try:
                ferry_samples, ferry_errors, where = run_ferry(hosts, p, log_dir)
                samples.update(ferry_samples)
                errors.update({k: f"{v['type']}: {v['message']}" for k, v in ferry_errors.items()})
                print(f"  ferry: done (logs in {log_dir})", flush=True)
            except Exception as e:
                errors["ferry"] = f"{type(e).__name__}: {str(e)[:3000]}"
                print(f"  ferry: failed (logs in {log_dir})", flush=True)
            try:
                raw_runs.append(run_raw_tcp(hosts, p))
                print("  raw TCP (after ferry): done", flush=True)
            except Exception as e:
                errors["raw_tcp_after"] = f"{type(e).__name__}: {e}"
        for n in SIZES:
            pooled = [s for run in raw_runs for s in run[n]]
            if pooled:
                samples[f"raw_tcp/{n}"] = pooled
    finally:
        hosts.down()
    results = {k: _summ(int(k.split("/")[1]), v) for k, v in samples.items() if v}
    lines = table(results, TRANSPORTS if args.only == "all" else ())
    print()
    print("\n".join(lines))
    print()
    for k, e in errors.items():
        print(f"{k}: n/a ({e})")
    raw_medians = {}
    for n in SIZES:
        per_run = [statistics.median(run[n]) for run in raw_runs if run.get(n)]
        raw_medians[_label(n)] = per_run
    print("raw TCP medians per run (s): " + "; ".join(
        f"{k}: " + ", ".join(f"{m:.5f}" for m in v) for k, v in raw_medians.items()))
    load_end = os.getloadavg()
    elapsed = time.monotonic() - t_start
    print(f"load avg at start {load_start[0]:.2f}, at end {load_end[0]:.2f}; {elapsed:.0f} s")

    doc = {
        "meta": {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "host": platform.node(), "kernel": platform.release(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "quick": args.quick, "only": args.only,
            "elapsed_s": round(elapsed, 1), "loadavg_start": list(load_start),
            "loadavg_end": list(load_end), "hostnames_of_actors": where,
            "link": "veth pair per host on a Linux bridge, each in its own network namespace "
                    "(scripts/netns-cluster.sh), MTU 1500",
            "warmup": {_label(n): v for n, v in p["warmup"].items()},
            "reps": {_label(n): v for n, v in p["reps"].items()},
            "units": {"gbps": "bytes / median seconds per transfer / 1e9",
                      "median_s": "median seconds per transfer"},
            "columns": {
                "raw_tcp": "python socket: 8-byte length + sendall in h1, recv_into a reused "
                           "buffer in h2, 1-byte answer; timed on the sender; two runs pooled",
                "gloo": "ferry.get(B.consume.remote(A.produce_gloo.remote(n))), A on h1, B on h2, "
                        "group [A, B] (backend gloo)",
                "nixl": "same, tensor_transport='nixl'",
                "object_store": "same, A's plain method (object store)",
            },
        },
        "table": lines,
        "results": results,
        "raw_tcp_medians_per_run_s": raw_medians,
        "errors": errors,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(doc, fh, indent=2)
    print(f"wrote {args.out}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
