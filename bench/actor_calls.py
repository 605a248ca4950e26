#!/usr/bin/env python3
"""Actor-call benchmark: ferry against a multiprocessing.Pipe echo and Dask actors.

Measures, in one run and on one machine:

* sync RTT     -- median microseconds of one blocking call (`ferry.get(a.echo.remote(1))`),
                  each call timed on its own, after a warm-up.
* async calls/s -- N calls submitted back to back, then all results fetched once.
* get N MiB    -- GB/s (1 GB = 1e9 bytes) of fetching a numpy array that an actor method
                  returns from a buffer it preallocated and touched (sender buffers warm;
                  the receiving side allocates as each system does by default). Median of reps.
* tasks        -- remote functions on pooled workers (ferry's column only; bench/ray_baseline.py
                  runs the same cells through Ray): round trip of `ferry.get(f.remote(1))`,
                  tasks/s of 2 000 tasks submitted then fetched, and the chained
                  `ferry.get(g.remote(f.remote(1)))`.

Baselines (same run): a `multiprocessing.Pipe` echo between two Python processes
(arrays pickled through the pipe), and Dask distributed actors on
`LocalCluster(processes=True, n_workers=2, threads_per_worker=1)`.

Prints a table (metric | ferry | mp.Pipe | dask | target) and writes
bench/results/actor_calls.json. If `import ferry` fails (or ferry errors), the
ferry column reads n/a and the baselines still run.

    python bench/actor_calls.py            # full run (~1-3 minutes)
    python bench/actor_calls.py --quick    # fewer calls and reps (~30 s)
    python bench/actor_calls.py --only pipe,dask
"""
import argparse
import datetime
import json
import logging
import multiprocessing as mp
import os
import platform
import statistics
import sys
import threading
import time
import traceback

import numpy as np

MiB = 1 << 20
ARRAY_SIZES = (1 * MiB, 16 * MiB, 256 * MiB)
GET_TIMEOUT_S = 120.0  # every blocking wait in this script is bounded

# Targets for actor calls and object gets.
TARGET_RTT_US = 100.0
TARGET_RTT_VS_DASK = 10.0
TARGET_CALLS_PER_S = 20_000.0
TARGET_256_GBPS = 3.0


def _params(quick):
    # Tasks: a Ray task takes a few ms here (twice that chained): ~20 s for Ray's task cells.
    if quick:
        return dict(rtt_calls=2000, rtt_warmup=200, tput_calls=10_000, dask_rtt_calls=300,
                    dask_tput_calls=2000, task_calls=300, task_warmup=100, task_tput=2000,
                    reps={1 * MiB: 10, 16 * MiB: 5, 256 * MiB: 3})
    # Dask runs a few hundred calls/s: 3 000 calls keep its throughput run under 20 s.
    return dict(rtt_calls=5000, rtt_warmup=500, tput_calls=10_000, dask_rtt_calls=1000,
                dask_tput_calls=3000, task_calls=1000, task_warmup=200, task_tput=2000,
                reps={1 * MiB: 30, 16 * MiB: 10, 256 * MiB: 5})


def _median_us(samples_ns):
    return statistics.median(samples_ns) / 1e3


def _gbps(nbytes, seconds):
    return nbytes / seconds / 1e9


def _make_array(nbytes):
    # np.ones touches every page: the producer's buffer is warm.
    return np.ones(nbytes // 8, dtype=np.float64)


def _check_array(arr, nbytes):
    if not isinstance(arr, np.ndarray) or arr.nbytes != nbytes or arr[0] != 1.0 or arr[-1] != 1.0:
        raise AssertionError(f"bad array back: {type(arr)} {getattr(arr, 'nbytes', None)} bytes")


def _time_gets(fetch, nbytes, reps, warmup=1):
    """fetch() returns the array; returns median GB/s over reps (after warmup)."""
    rates = []
    for i in range(warmup + reps):
        t0 = time.perf_counter()
        arr = fetch()
        dt = time.perf_counter() - t0
        _check_array(arr, nbytes)
        del arr
        if i >= warmup:
            rates.append(_gbps(nbytes, dt))
    return statistics.median(rates)


# ---------------------------------------------------------------- mp.Pipe ----

def _pipe_child(conn):
    arrays = {}
    while True:
        msg = conn.recv()
        if isinstance(msg, tuple) and msg[0] == "array":
            nbytes = msg[1]
            if nbytes not in arrays:
                arrays[nbytes] = _make_array(nbytes)
            conn.send(arrays[nbytes])
        elif msg == "stop":
            conn.close()
            return
        else:
            conn.send(msg)


def bench_pipe(p):
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=True)
    proc = ctx.Process(target=_pipe_child, args=(child,), daemon=True)
    proc.start()
    child.close()
    out = {}
    try:
        for _ in range(p["rtt_warmup"]):
            parent.send(1)
            parent.recv()
        samples = []
        for _ in range(p["rtt_calls"]):
            t0 = time.perf_counter_ns()
            parent.send(1)
            parent.recv()
            samples.append(time.perf_counter_ns() - t0)
        out["rtt_us"] = _median_us(samples)

        # Async: a receiver thread drains replies while the main thread sends,
        # so neither side's pipe buffer fills and blocks the other.
        n = p["tput_calls"]
        got = []

        def drain():
            for _ in range(n):
                got.append(parent.recv())

        t0 = time.perf_counter()
        th = threading.Thread(target=drain)
        th.start()
        for i in range(n):
            parent.send(i)
        th.join(GET_TIMEOUT_S)
        dt = time.perf_counter() - t0
        if len(got) != n or got[-1] != n - 1:
            raise AssertionError("pipe throughput run lost messages")
        out["calls_per_s"] = n / dt

        for nbytes in ARRAY_SIZES:
            def fetch(nbytes=nbytes):
                parent.send(("array", nbytes))
                return parent.recv()
            out[f"get_{nbytes // MiB}MiB_gbps"] = _time_gets(fetch, nbytes, p["reps"][nbytes])
        parent.send("stop")
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join(5)
    return out


# ------------------------------------------------------------------- dask ----

class DaskEcho:
    def __init__(self):
        self.arrays = {}

    def echo(self, x):
        return x

    def prepare(self, nbytes):
        self.arrays[nbytes] = _make_array(nbytes)
        return nbytes

    def array(self, nbytes):
        return self.arrays[nbytes]


def bench_dask(p):
    import distributed
    for name in ("distributed", "tornado", "asyncio"):
        logging.getLogger(name).setLevel(logging.ERROR)
    out = {}
    cluster = distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1,
                                       dashboard_address=None, silence_logs=logging.ERROR)
    client = distributed.Client(cluster)
    try:
        a = client.submit(DaskEcho, actor=True).result(timeout=GET_TIMEOUT_S)
        for _ in range(min(100, p["dask_rtt_calls"])):
            a.echo(1).result(timeout=GET_TIMEOUT_S)
        samples = []
        for _ in range(p["dask_rtt_calls"]):
            t0 = time.perf_counter_ns()
            a.echo(1).result(timeout=GET_TIMEOUT_S)
            samples.append(time.perf_counter_ns() - t0)
        out["rtt_us"] = _median_us(samples)

        n = p["dask_tput_calls"]
        t0 = time.perf_counter()
        futs = [a.echo(i) for i in range(n)]
        res = [f.result(timeout=GET_TIMEOUT_S) for f in futs]
        dt = time.perf_counter() - t0
        if res[-1] != n - 1:
            raise AssertionError("dask throughput run returned wrong values")
        out["calls_per_s"] = n / dt
        out["tput_calls"] = n

        for nbytes in ARRAY_SIZES:
            a.prepare(nbytes).result(timeout=GET_TIMEOUT_S)
            out[f"get_{nbytes // MiB}MiB_gbps"] = _time_gets(
                lambda nbytes=nbytes: a.array(nbytes).result(timeout=GET_TIMEOUT_S),
                nbytes, p["reps"][nbytes])
        del a
    finally:
        client.close()
        cluster.close()
    return out


# ------------------------------------------------------------------ ferry ----

def bench_runtime(rt, p):
    """Runs the ferry column's cells through `rt`, a started runtime module with
    Ray's actor API: `ferry`, or `ray` itself (bench/ray_baseline.py)."""

    @rt.remote
    class Echo:
        def __init__(self):
            self.arrays = {}

        def echo(self, x):
            return x

        def prepare(self, nbytes):
            self.arrays[nbytes] = _make_array(nbytes)
            return nbytes

        def array(self, nbytes):
            return self.arrays[nbytes]

    out = {}
    a = Echo.remote()
    for _ in range(p["rtt_warmup"]):
        rt.get(a.echo.remote(1), timeout=GET_TIMEOUT_S)
    samples = []
    for _ in range(p["rtt_calls"]):
        t0 = time.perf_counter_ns()
        rt.get(a.echo.remote(1), timeout=GET_TIMEOUT_S)
        samples.append(time.perf_counter_ns() - t0)
    out["rtt_us"] = _median_us(samples)

    n = p["tput_calls"]
    t0 = time.perf_counter()
    refs = [a.echo.remote(i) for i in range(n)]
    res = rt.get(refs, timeout=GET_TIMEOUT_S)
    dt = time.perf_counter() - t0
    if list(res) != list(range(n)):
        raise AssertionError(f"{rt.__name__} throughput run returned wrong values or order")
    del refs, res
    out["calls_per_s"] = n / dt

    for nbytes in ARRAY_SIZES:
        rt.get(a.prepare.remote(nbytes), timeout=GET_TIMEOUT_S)
        out[f"get_{nbytes // MiB}MiB_gbps"] = _time_gets(
            lambda nbytes=nbytes: rt.get(a.array.remote(nbytes), timeout=GET_TIMEOUT_S),
            nbytes, p["reps"][nbytes])
    return out


# The task functions live at module level so that workers import them by reference.

def _task_echo(x):
    return x


def _task_add_one(x):
    return x + 1


def _task_pid():
    return os.getpid()


def bench_tasks(rt, p):
    """Runs the remote-function cells through `rt`, a started runtime module with
    Ray's task API: `ferry`, or `ray` itself (bench/ray_baseline.py)."""
    # Run as a script this file is __main__, and cloudpickle copies a function of
    # __main__ by value into every task; the module's copy goes by reference (bench/
    # is on the workers' path), as it does when bench/ray_baseline.py imports this file.
    import actor_calls as mod
    echo, add_one, pid = (rt.remote(fn) for fn in (mod._task_echo, mod._task_add_one,
                                                      mod._task_pid))
    n = p["task_tput"]

    def burst():
        t0 = time.perf_counter()
        refs = [echo.remote(i) for i in range(n)]
        res = rt.get(refs, timeout=GET_TIMEOUT_S)
        dt = time.perf_counter() - t0
        if list(res) != list(range(n)):
            raise AssertionError(f"{rt.__name__} task throughput run returned wrong values")
        return dt

    def median_us(call, want):
        samples = []
        for _ in range(p["task_calls"]):
            t0 = time.perf_counter_ns()
            got = call()
            samples.append(time.perf_counter_ns() - t0)
            if got != want:
                raise AssertionError(f"{rt.__name__} task returned {got!r}, not {want!r}")
        return _median_us(samples)

    # Warm-up: an untimed burst lets each runtime start the pooled workers it uses for one
    # (one per CPU it offers, at most), then sequential calls of both functions.
    burst()
    for _ in range(p["task_warmup"]):
        rt.get(add_one.remote(echo.remote(1)), timeout=GET_TIMEOUT_S)
    out = {}
    out["task_rtt_us"] = median_us(lambda: rt.get(echo.remote(1), timeout=GET_TIMEOUT_S), 1)
    out["tasks_per_s"] = n / burst()
    out["task_chain_us"] = median_us(
        lambda: rt.get(add_one.remote(echo.remote(1)), timeout=GET_TIMEOUT_S), 2)
    # Not timed: how many worker processes ran a burst of 200 tasks.
    out["task_workers"] = len(set(rt.get([pid.remote() for _ in range(200)],
                                         timeout=GET_TIMEOUT_S)))
    return out


def bench_ferry(p):
    import ferry  # may raise: the caller turns that into n/a cells
    if not hasattr(ferry, "remote"):  # python/ferry exists but the package is not built yet
        raise ImportError(f"ferry at {list(getattr(ferry, '__path__', []))} has no API yet")
    ferry.init()
    try:
        out = bench_runtime(ferry, p)
        try:
            out.update(bench_tasks(ferry, p))
        except Exception as e:  # the task rows read n/a; the actor rows stay
            out["tasks_error"] = f"{type(e).__name__}: {e}".splitlines()[0][:200]
            traceback.print_exc()
        return out
    finally:
        ferry.shutdown()


# ----------------------------------------------------------------- report ----

def _fmt(v, kind):
    if v is None:
        return "n/a"
    if kind == "us":
        return f"{v:,.1f} µs"
    if kind == "rate":
        return f"{v:,.0f}/s"
    return f"{v:.2f} GB/s"


def report(results, errors, params, quick, out_path):
    f, pi, d = (results.get(k, {}) for k in ("ferry", "pipe", "dask"))
    rows = [("sync call RTT (median)", "rtt_us", "us", f"≤ {TARGET_RTT_US:.0f} µs, ≥{TARGET_RTT_VS_DASK:.0f}x faster than dask"),
            (f"async throughput ({params['tput_calls']:,} calls)", "calls_per_s", "rate",
             f"≥ {TARGET_CALLS_PER_S:,.0f}/s")]
    for nbytes in ARRAY_SIZES:
        mib = nbytes // MiB
        rows.append((f"get {mib} MiB array (median)", f"get_{mib}MiB_gbps", "gbps",
                     f"≥ {TARGET_256_GBPS:.0f} GB/s" if nbytes == 256 * MiB else "—"))
    header = ("metric", "ferry", "mp.Pipe", "dask", "target")
    table = [header] + [(label, _fmt(f.get(k), kind), _fmt(pi.get(k), kind), _fmt(d.get(k), kind), tgt)
                        for label, k, kind, tgt in rows]
    # Remote functions: ferry's figures only (Ray's are in bench/ray_baseline.py).
    for label, k, kind in (("task round trip (median)", "task_rtt_us", "us"),
                           (f"task throughput ({params['task_tput']:,} tasks)", "tasks_per_s", "rate"),
                           ("chained task, ref argument (median)", "task_chain_us", "us")):
        table.append((label, _fmt(f.get(k), kind), "—", "—", "—"))
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"
    print()
    print(line(table[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in table[1:]:
        print(line(r))

    targets = {}
    if f.get("rtt_us") is not None:
        targets["rtt_le_100us"] = f["rtt_us"] <= TARGET_RTT_US
        if d.get("rtt_us") is not None:
            targets["rtt_10x_faster_than_dask"] = d["rtt_us"] / f["rtt_us"] >= TARGET_RTT_VS_DASK
    if f.get("calls_per_s") is not None:
        targets["calls_per_s_ge_20000"] = f["calls_per_s"] >= TARGET_CALLS_PER_S
    if f.get("get_256MiB_gbps") is not None:
        targets["get_256MiB_ge_3gbps"] = f["get_256MiB_gbps"] >= TARGET_256_GBPS
    print()
    print("Buffers: producer arrays preallocated and touched (warm); receivers allocate per get. "
          "GB = 1e9 bytes. " + ("--quick run." if quick else "Full run."))
    if d.get("tput_calls") and d["tput_calls"] != params["tput_calls"]:
        print(f"Dask throughput measured over {d['tput_calls']:,} calls (slow baseline).")
    for k, ok in targets.items():
        print(f"target {k}: {'met' if ok else 'MISSED'}")
    if f.get("task_workers"):
        print(f"A burst of 200 ferry tasks ran on {f['task_workers']} pooled worker processes.")
    for k, e in errors.items():
        print(f"{k}: n/a ({e})")
    if f.get("tasks_error"):
        print(f"ferry tasks: n/a ({f['tasks_error']})")

    doc = {
        "meta": {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "quick": quick, "params": {k: v for k, v in params.items() if k != "reps"},
            "reps": {f"{k // MiB}MiB": v for k, v in params["reps"].items()},
            "buffers": "producer warm (preallocated, touched); receiver allocates per get",
            "units": {"rtt_us": "median microseconds", "calls_per_s": "calls per second",
                      "get_*_gbps": "median GB/s, 1 GB = 1e9 bytes",
                      "task_rtt_us, task_chain_us": "median microseconds",
                      "tasks_per_s": "tasks per second"},
        },
        "results": {"ferry": f or None, "mp_pipe": pi or None, "dask": d or None},
        "targets": {"rtt_us_max": TARGET_RTT_US, "rtt_vs_dask_min": TARGET_RTT_VS_DASK,
                    "calls_per_s_min": TARGET_CALLS_PER_S, "get_256MiB_gbps_min": TARGET_256_GBPS},
        "targets_met": targets,
        "errors": errors,
    }
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w") as fh:
        json.dump(doc, fh, indent=2)
    print(f"wrote {out_path}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer calls and reps")
    ap.add_argument("--only", default="ferry,pipe,dask", help="comma list of ferry,pipe,dask")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "results", "actor_calls.json"))
    args = ap.parse_args(argv)
    params = _params(args.quick)
    which = [w.strip() for w in args.only.split(",") if w.strip()]
    results, errors = {}, {}
    benches = {"ferry": bench_ferry, "pipe": bench_pipe, "dask": bench_dask}
    for name in ("ferry", "pipe", "dask"):
        if name not in which:
            errors[name] = "skipped (--only)"
            continue
        print(f"running {name} ...", flush=True)
        t0 = time.perf_counter()
        try:
            results[name] = benches[name](params)
        except Exception as e:  # report, keep the other columns
            errors[name] = f"{type(e).__name__}: {e}".splitlines()[0][:200]
            if not (name == "ferry" and isinstance(e, ImportError)):
                traceback.print_exc()
        print(f"  {name} took {time.perf_counter() - t0:.1f}s", flush=True)
    report(results, errors, params, args.quick, args.out)
    # Baselines must run; a missing ferry is reported, not fatal, until it exists.
    return 1 if ("pipe" in errors and "pipe" in which) or ("dask" in errors and "dask" in which) else 0


if __name__ == "__main__":
    sys.exit(main())
