#!/usr/bin/env python3
"""Ray as a baseline: the actor-call, task and transfer cells through ferry and through Ray, one run.

The driver (`make bench-ray` runs it with .venv's Python) starts three children, one
after the other, so that neither runtime's background processes load the other's
measurement:

* `.venv/bin/python     bench/ray_baseline.py --runtime ferry`
* `.venv-ray/bin/python bench/ray_baseline.py --runtime ray`   (Ray from PyPI, pinned in
  bench/ray-requirements.txt; .venv-ray sees Debian's torch and numpy)
* the same with RAY_ENABLE_ZERO_COPY_TORCH_TENSORS=1, object_store cells only: Ray's
  opt-in that moves a CPU tensor like a numpy array instead of through torch's pickling

Each child runs the same cell definitions with its runtime module, which has Ray's
actor and task API in both cases:

* actor calls -- `actor_calls.bench_runtime(rt, params)`: sync call RTT, async
  throughput, get of a 1/16/256 MiB numpy array (bench/actor_calls.py's ferry column).
* tasks       -- `actor_calls.bench_tasks(rt, params)`: `rt.remote` on trivial functions of
  actor_calls (workers import them by reference); round trip of `rt.get(f.remote(1))`,
  tasks/s of 2 000 tasks submitted then fetched together, and the chained
  `rt.get(g.remote(f.remote(1)))`, after an untimed burst that starts the pooled workers.
* transfers   -- `transfer.ActorPair(rt, ...)`: actor A's method returns a preallocated
  float32 tensor, actor B's `consume(t)` returns `t.numel()`; the driver times
  `rt.get(B.consume.remote(A.produce.remote(n)))` end to end, for
  * object_store: A's plain method;
  * gloo: A's method `@rt.method(tensor_transport="gloo")` and
    `create_collective_group([A, B], backend="gloo")` (Ray's direct transport, RDT).
    Ray needs `@ray.remote(enable_tensor_transport=True)` on the receiving actor too
    (without it the transfer hangs until Ray's 60 s RDT timeout); it runs all of an
    actor's tasks on a background thread, so the object_store cell uses a second pair
    of plain actors.
  Sizes and reps are bench/transfer.py's; per size the two columns run in interleaved
  rounds and each is checked with a fresh fill value before and after timing.

Ray is started with `ray.init(num_cpus=8, include_dashboard=False,
object_store_memory=2 GiB)` and shut down at the end. A cell that fails reads n/a
and its exception is printed and kept in the JSON; the run exits non-zero when a
child or any ferry cell fails. The driver prints one table (cell | ferry | Ray |
ratio, where ratio > 1 means ferry is faster) and writes bench/results/ray_baseline.json.

    make bench-ray                                   # makes .venv-ray, then runs this
    .venv/bin/python bench/ray_baseline.py           # full run, ~3 minutes on 2 cores
    .venv/bin/python bench/ray_baseline.py --quick   # fewer calls and reps, ~1 minute
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback

import actor_calls  # bench/ is sys.path[0]: this script runs as bench/ray_baseline.py
import transfer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MiB = 1 << 20
RAY_INIT = dict(num_cpus=8, include_dashboard=False, object_store_memory=2 << 30)
CHILD_TIMEOUT_S = 900
ALL_CELLS = ("calls", "tasks", "object_store", "gloo")
# Ray pickles a CPU tensor with torch's reducer (torch.save into bytes: several copies) unless
# this opt-in is set; then it travels like a numpy array (zero-copy out of the store).
ZERO_COPY_ENV = {"RAY_ENABLE_ZERO_COPY_TORCH_TENSORS": "1"}
CHILD_ENV_KEYS = tuple(ZERO_COPY_ENV)


def _err(e):
    return f"{type(e).__name__}: {e}".strip().splitlines()[0][:300]


# ------------------------------------------------------------------ child ----

def _transfer_cells(rt, transports, quick, errors):
    """bench/transfer.py's columns for `transports` (object_store, gloo) through `rt`."""
    p = transfer._params(quick)
    # Ray runs RDT only between actors made with enable_tensor_transport=True (which
    # moves all their tasks to a background thread); ferry needs no option.
    rdt_options = {"enable_tensor_transport": True} if rt.__name__ == "ray" else None
    pairs = {}
    for tr in transports:
        try:
            pairs[tr] = transfer.ActorPair(rt, (tr,), rdt_options if tr != "object_store" else None)
        except Exception as e:
            errors[tr] = _err(e)
            traceback.print_exc()
    out = {tr: {} for tr in pairs}
    try:
        for idx, n in enumerate(transfer.SIZES):
            w, r = p["warmup"][n], p["reps"][n]
            rounds = min(transfer.ROUNDS, r)
            per_round = -(-r // rounds)
            fill = float(idx + 2)
            live = [tr for tr in pairs if tr not in errors]
            samples = {tr: [] for tr in live}
            t0 = time.perf_counter()
            for rnd in range(-1, rounds + 1):  # -1 and rounds: the fill checks
                for tr in list(live):
                    pair = pairs[tr]
                    try:
                        if rnd in (-1, rounds):
                            f = fill if rnd == -1 else fill + 0.5
                            pair.prepare(n, f)
                            pair.verify_transport(n, f, tr)
                        else:
                            wr = w if rnd == 0 else max(1, w // rounds)
                            samples[tr] += pair.run(n, wr, per_round, tr)
                    except Exception as e:
                        errors[tr] = f"{transfer._label(n)}: {_err(e)}"
                        traceback.print_exc()
                        live.remove(tr)
            for tr in live:
                out[tr][transfer._key(n)] = transfer._summ(n, samples[tr])
            print(f"  {rt.__name__} {transfer._label(n):>7}: {time.perf_counter() - t0:5.1f}s  "
                  + "  ".join(f"{tr} {out[tr][transfer._key(n)]['us']:,.0f} µs" for tr in live),
                  flush=True)
    finally:
        for pair in pairs.values():
            try:
                pair.close()
            except Exception:
                traceback.print_exc()
    return out


def run_child(runtime, cells, quick, out_path):
    import torch
    if runtime == "ray":
        import ray as rt
        rt.init(**RAY_INIT)
    else:
        import ferry as rt
        rt.init()
    meta = {"runtime": runtime, "version": getattr(rt, "__version__", None),
            "python": sys.executable, "torch": torch.__version__,
            "env": {k: v for k, v in os.environ.items() if k in CHILD_ENV_KEYS}}
    results, errors = {}, {}
    try:
        for cell, bench, what in (("calls", actor_calls.bench_runtime, "actor calls"),
                                  ("tasks", actor_calls.bench_tasks, "tasks")):
            if cell not in cells:
                continue
            t0 = time.perf_counter()
            try:
                results[cell] = bench(rt, actor_calls._params(quick))
            except Exception as e:
                errors[cell] = _err(e)
                traceback.print_exc()
            print(f"  {runtime} {what} took {time.perf_counter() - t0:.1f}s", flush=True)
        transports = [c for c in cells if c not in ("calls", "tasks")]
        if transports:
            t0 = time.perf_counter()
            results["transfer"] = _transfer_cells(rt, transports, quick, errors)
            print(f"  {runtime} transfers took {time.perf_counter() - t0:.1f}s", flush=True)
    finally:
        rt.shutdown()
    with open(out_path, "w") as fh:
        json.dump({"meta": meta, "results": results, "errors": errors}, fh)
    return 0


# ----------------------------------------------------------------- driver ----

def _run(python, name, runtime, cells, extra_env, quick, tmpdir):
    out_path = os.path.join(tmpdir, f"{name}.json")
    cmd = [python, os.path.abspath(__file__), "--runtime", runtime, "--cells", ",".join(cells),
           "--out", out_path] + (["--quick"] if quick else [])
    # Actors and tasks unpickle functions of actor_calls and transfer by reference: their
    # worker processes inherit this path.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [HERE] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]), **extra_env)
    print(f"== {name}: " + " ".join([f"{k}={v}" for k, v in extra_env.items()] + cmd), flush=True)
    t0 = time.perf_counter()
    try:
        rc = subprocess.run(cmd, env=env, timeout=CHILD_TIMEOUT_S).returncode
    except subprocess.TimeoutExpired:
        return None, f"did not finish in {CHILD_TIMEOUT_S}s", time.perf_counter() - t0
    took = time.perf_counter() - t0
    if not os.path.exists(out_path):
        return None, f"exited {rc} without results", took
    with open(out_path) as fh:
        return json.load(fh), None, took


def _fmt_cell(kind, v):
    if kind == "xfer" and v is not None:
        return transfer._cell(v)  # a transfer summary: GB/s (time per transfer)
    return actor_calls._fmt(v, kind)


def _rows(ferry, ray, ray_zero_copy, quick):
    """(label, ferry text, Ray text, ratio text); ratio > 1: ferry is faster."""
    rows = []
    fc, rc = ((d or {}).get("results", {}).get("calls", {}) for d in (ferry, ray))
    ftk, rtk = ((d or {}).get("results", {}).get("tasks", {}) for d in (ferry, ray))
    p = actor_calls._params(quick)
    calls = [("sync call RTT", "rtt_us", "us", fc, rc),
             (f"async throughput ({p['tput_calls']:,} calls)", "calls_per_s", "rate", fc, rc)]
    calls += [(f"get {n // MiB} MiB numpy array", f"get_{n // MiB}MiB_gbps", "gbps", fc, rc)
              for n in actor_calls.ARRAY_SIZES]
    calls += [("task round trip", "task_rtt_us", "us", ftk, rtk),
              (f"task throughput ({p['task_tput']:,} tasks)", "tasks_per_s", "rate", ftk, rtk),
              ("chained task (ref argument)", "task_chain_us", "us", ftk, rtk)]
    for label, key, kind, fd, rd in calls:
        f, r = fd.get(key), rd.get(key)
        ratio = None if f is None or r is None else (r / f if kind == "us" else f / r)
        rows.append((label, _fmt_cell(kind, f), _fmt_cell(kind, r), ratio))
    ft, rt, zt = ((d or {}).get("results", {}).get("transfer", {})
                  for d in (ferry, ray, ray_zero_copy))
    for tr, name, ray_t in (("object_store", "object store", rt),
                            ("object_store", "object store, Ray zero-copy tensors", zt),
                            ("gloo", "gloo (RDT)", rt)):
        for n in transfer.SIZES:
            k = transfer._key(n)
            f, r = ft.get(tr, {}).get(k), ray_t.get(tr, {}).get(k)
            ratio = None if f is None or r is None else r["us"] / f["us"]
            rows.append((f"transfer {transfer._label(n)}, {name}", _fmt_cell("xfer", f),
                         _fmt_cell("xfer", r), ratio))
    return [(a, b, c, "n/a" if x is None else f"{x:.2f}x") for a, b, c, x in rows]


def run_driver(args):
    for python in (args.ferry_python, args.ray_python):
        if not os.access(python, os.X_OK):
            print(f"{python} not found: `make bench-ray` makes .venv-ray (and needs .venv from "
                  "`make build`)", file=sys.stderr)
            return 2
    t_start = time.perf_counter()
    load_start = os.getloadavg()
    print(f"ray baseline ({'quick' if args.quick else 'full'}); load avg {load_start[0]:.2f} "
          f"on {os.cpu_count()} CPUs", flush=True)
    data, failed, took = {}, {}, {}
    children = (("ferry", args.ferry_python, "ferry", ALL_CELLS, {}),
                ("ray", args.ray_python, "ray", ALL_CELLS, {}),
                ("ray_zero_copy", args.ray_python, "ray", ("object_store",), ZERO_COPY_ENV))
    with tempfile.TemporaryDirectory(prefix="ferry-bench-ray-") as tmpdir:
        for name, python, runtime, cells, env in children:
            data[name], err, took[name] = _run(python, name, runtime, cells, env, args.quick, tmpdir)
            if err:
                failed[name] = err
    load_end = os.getloadavg()
    elapsed = time.perf_counter() - t_start

    rows = _rows(data["ferry"], data["ray"], data["ray_zero_copy"], args.quick)
    ray_version = (data["ray"] or {}).get("meta", {}).get("version")
    header = ("cell", "ferry median", f"Ray {ray_version or '?'} median", "ratio")
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(4)]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"
    print()
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))
    print()
    print("ratio > 1: ferry is faster (Ray's time / ferry's, or ferry's rate / Ray's). "
          "Transfers: GB/s (1 GB = 1e9 B) and median time per "
          "rt.get(B.consume.remote(A.produce.remote(n))).")
    print(f"Ray zero-copy tensors: {' '.join(f'{k}={v}' for k, v in ZERO_COPY_ENV.items())} "
          "(Ray's opt-in; off by default), object store cells only.")
    workers = [(name, (data[name] or {}).get("results", {}).get("tasks", {}).get("task_workers"))
               for name in ("ferry", "ray")]
    if all(n for _, n in workers):
        print("Tasks: a burst of 200 ran on " + " and ".join(
            f"{n} {name} worker processes" for name, n in workers) + ".")
    for name, *_ in children:
        for cell, e in ((data[name] or {}).get("errors", {}) or {}).items():
            print(f"{name} {cell}: n/a ({e})")
        if name in failed:
            print(f"{name}: n/a ({failed[name]})")
    print(f"ferry took {took['ferry']:.0f}s, Ray {took['ray']:.0f}s + "
          f"{took['ray_zero_copy']:.0f}s (zero-copy tensors); load avg at start "
          f"{load_start[0]:.2f}, at end {load_end[0]:.2f} (1-min, {os.cpu_count()} CPUs); "
          f"run took {elapsed:.0f}s" + (" (--quick)" if args.quick else ""))

    doc = {
        "meta": {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "host": platform.node(), "cpus": os.cpu_count(), "quick": args.quick,
            "elapsed_s": round(elapsed, 1), "loadavg_start": list(load_start),
            "loadavg_end": list(load_end), "ray_init": RAY_INIT,
            "children": {k: (v or {}).get("meta") for k, v in data.items()},
            "ratio": "> 1: ferry faster",
        },
        "table": [list(header)] + [list(r) for r in rows],
        **data, "failed": failed,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(doc, fh, indent=2)
    print(f"wrote {args.out}")
    # ferry is under test: any failure of it fails the run. Ray's cells that cannot
    # run are reported with their exception, as the doc records them.
    return 1 if failed or (data["ferry"] or {}).get("errors") else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer calls and reps")
    ap.add_argument("--ferry-python", default=os.path.join(ROOT, ".venv", "bin", "python"))
    ap.add_argument("--ray-python", default=os.path.join(ROOT, ".venv-ray", "bin", "python"))
    ap.add_argument("--out", default=os.path.join(HERE, "results", "ray_baseline.json"))
    ap.add_argument("--runtime", choices=("ferry", "ray"), help=argparse.SUPPRESS)
    ap.add_argument("--cells", default=",".join(ALL_CELLS), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.runtime:  # a child (see _run): one runtime's cells, results to --out
        return run_child(args.runtime, args.cells.split(","), args.quick, args.out)
    return run_driver(args)


if __name__ == "__main__":
    sys.exit(main())
