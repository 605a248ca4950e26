#!/usr/bin/env python3
"""Tensor-transfer benchmark: ferry object_store, gloo, nixl, shm and auto vs torch.distributed gloo.

Measures, in one run and on one machine, for float32 CPU tensors of 4 KiB, 64 KiB,
1 MiB, 16 MiB and 256 MiB (1 GB = 1e9 bytes; medians over reps after warm-up reps):

* memcpy        -- same-process `dst.copy_(src)` into a preallocated tensor: the ceiling.
* torch.dist    -- two processes, `init_process_group("gloo", FileStore)`; rank 0 sends the
                   tensor, rank 1 receives into a preallocated tensor and sends back a
                   1-element ack; rank 0 times send + ack, one transfer per sample.
* ferry object_store -- actor A's plain method returns a preallocated tensor; actor B has
                   `consume(t) -> t.numel()`; the driver times
                   `ferry.get(B.consume.remote(A.produce.remote(n)))` end to end.
* ferry gloo    -- the same with A's method `@ferry.method(tensor_transport="gloo")` and a
                   collective group over [A, B] (backend "gloo").
* ferry nixl / shm / auto -- the same with `tensor_transport="nixl"` (UCX one-sided get),
                   `"shm"` (same-host one-copy pull from the producer's shared-memory arena)
                   and `"auto"` (shm on one host); no group needed. Their 4 KiB pass
                   overheads are measured in the same alternating loop as gloo's.
* 4 KiB pass overhead -- a 4 KiB RDT ref is produced once; then, alternating, the driver
                   times `ferry.get(B.consume.remote(rdt_ref))` and
                   `ferry.get(B.consume.remote(0))` (the same call, a plain int instead of
                   the ref); overhead = the difference of the medians. The plain call's
                   median is the call RTT (also reported: the call with a 1-element plain
                   tensor, which pays for pickling a tensor). RDT objects up to
                   FERRY_INLINE_TENSOR_BYTES (default 64 KiB) move inline over the control
                   channel, so a child run with FERRY_INLINE_TENSOR_BYTES=0 measures the
                   same overhead through the Gloo group; both are printed, the target is
                   checked against the default.

Per size, torch, ferry object_store and ferry gloo run in up to 5 interleaved rounds
(each re-warmed), so that load from other work on the machine hits all columns alike;
the samples of the rounds are pooled for the median. The load average is printed.

Buffers are warm: producer tensors are preallocated and touched before timing, the
receivers reuse memory (torch: one preallocated tensor; ferry: its receive pool), and
each size runs warm-up reps first. Every consumer returns numel (asserted), and each path
is checked once per size with a fresh fill value that the receiver must see.

Prints a table, the pass-overhead line and each target as met or MISSED; writes
bench/results/transfer.json and bench/results/transfer.png (copied to docs/transfer.png).

    python bench/transfer.py            # full run (~1-2 minutes on 2 cores)
    python bench/transfer.py --quick    # fewer reps (~40 s)
    python bench/transfer.py --breakdown  # a 4 KiB RDT round stage by stage (rdt_breakdown.py)
"""
import argparse
import datetime
import importlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import traceback

import torch
import torch.multiprocessing as tmp

KiB, MiB = 1 << 10, 1 << 20
SIZES = (4 * KiB, 64 * KiB, 1 * MiB, 16 * MiB, 256 * MiB)
GET_TIMEOUT_S = 120.0
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Targets of the two-sided path (Gloo) and the per-call cost of passing a ref.
TARGET_GLOO_VS_TORCH = 1.0      # at >= 1 MiB
TARGET_GLOO_VS_OBJSTORE = 2.0   # at >= 16 MiB
TARGET_GLOO_VS_SHM = 0.9        # at >= 1 MiB: a same-host pair through shared memory
TARGET_PASS_OVERHEAD_US = 100.0  # 4 KiB
# Targets of the one-sided transports (at 256 MiB, steady state).
TARGET_SHM_VS_MEMCPY = 0.6
TARGET_SHM_VS_TORCH = 4.0
TARGET_NIXL_VS_TORCH = 2.5
ONE_SIDED = ("nixl", "shm", "auto")
TORCH_STALL_US = 2000.0  # a torch round median above this at <= 1 MiB: the stalled mode
NOISY_SPREAD = 3.0  # flag a cell whose round medians differ more than this
INLINE_BYTES = int(os.environ.get("FERRY_INLINE_TENSOR_BYTES", 64 * 1024))  # ferry's default
ROUNDS = 5  # interleaved rounds per size (fewer when a size has fewer reps)


def _params(quick):
    if quick:
        return dict(warmup={4 * KiB: 50, 64 * KiB: 20, 1 * MiB: 5, 16 * MiB: 2, 256 * MiB: 1},
                    reps={4 * KiB: 200, 64 * KiB: 100, 1 * MiB: 30, 16 * MiB: 8, 256 * MiB: 3},
                    overhead_pairs=500, overhead_warmup=100)
    return dict(warmup={4 * KiB: 200, 64 * KiB: 50, 1 * MiB: 10, 16 * MiB: 3, 256 * MiB: 2},
                reps={4 * KiB: 1000, 64 * KiB: 500, 1 * MiB: 300, 16 * MiB: 40, 256 * MiB: 8},
                overhead_pairs=2000, overhead_warmup=300)


def _label(n):
    return f"{n // MiB} MiB" if n >= MiB else f"{n // KiB} KiB"


def _key(n):
    return f"{n // MiB}MiB" if n >= MiB else f"{n // KiB}KiB"


def _summ(nbytes, samples_s):
    med = statistics.median(samples_s)
    q = statistics.quantiles(samples_s, n=10) if len(samples_s) >= 10 else [min(samples_s)] * 9
    return {"gbps": nbytes / med / 1e9, "us": med * 1e6, "reps": len(samples_s),
            "min_us": min(samples_s) * 1e6, "p10_us": q[0] * 1e6, "p90_us": q[-1] * 1e6,
            "max_us": max(samples_s) * 1e6}


# ---------------------------------------------------------------- memcpy ----

def bench_memcpy(nbytes, warmup, reps):
    src = torch.ones(nbytes // 4, dtype=torch.float32)
    dst = torch.zeros(nbytes // 4, dtype=torch.float32)
    samples = []
    for i in range(warmup + reps):
        t0 = time.perf_counter()
        dst.copy_(src)
        dt = time.perf_counter() - t0
        if i >= warmup:
            samples.append(dt)
    assert float(dst[-1]) == 1.0
    return samples


# ------------------------------------------------------ torch.distributed ----

def _torch_rank(rank, store_path, conn):
    """Child process: waits for ("run", nbytes, warmup, reps) commands on its pipe."""
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method=f"file://{store_path}", rank=rank, world_size=2)
    ack = torch.zeros(1, dtype=torch.float32)
    conn.send("ready")
    while True:
        cmd = conn.recv()
        if cmd[0] == "stop":
            break
        _, nbytes, warmup, reps, fill = cmd
        buf = torch.full((nbytes // 4,), fill, dtype=torch.float32) if rank == 0 \
            else torch.zeros(nbytes // 4, dtype=torch.float32)
        samples = []
        for i in range(1 + warmup + reps):
            if rank == 0:
                t0 = time.perf_counter()
                dist.send(buf, dst=1)
                dist.recv(ack, src=1)
                dt = time.perf_counter() - t0
                if i > warmup:
                    samples.append(dt)
            else:
                dist.recv(buf, src=0)
                if i == 0:  # the first (untimed) transfer carries the fresh fill value
                    if float(buf[0]) != fill or float(buf[-1]) != fill or buf.numel() != nbytes // 4:
                        raise AssertionError("torch.distributed: bytes did not arrive")
                dist.send(ack, dst=0)
        conn.send(samples if rank == 0 else "ok")
    dist.destroy_process_group()
    conn.send("bye")


class TorchPair:
    def __init__(self):
        ctx = tmp.get_context("spawn")
        self.tmpdir = tempfile.mkdtemp(prefix="ferry-bench-tcpg-")
        store = os.path.join(self.tmpdir, "store")
        self.conns, self.procs = [], []
        for r in range(2):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_torch_rank, args=(r, store, child), daemon=True)
            p.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(p)
        for c in self.conns:
            self._recv(c)

    def _recv(self, c):
        if not c.poll(GET_TIMEOUT_S):
            raise TimeoutError("torch.distributed child did not answer")
        return c.recv()

    def run(self, nbytes, warmup, reps, fill):
        for c in self.conns:
            c.send(("run", nbytes, warmup, reps, fill))
        samples = self._recv(self.conns[0])
        assert self._recv(self.conns[1]) == "ok"
        return samples

    def close(self):
        for c in self.conns:
            try:
                c.send(("stop",))
            except Exception:
                pass
        for p in self.procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join(5)
        shutil.rmtree(self.tmpdir, ignore_errors=True)


# ------------------------------------------------------ ferry (or Ray) ----

def _producing_method(rt, transport):
    """Producer.produce_<transport>: returns the prepared tensor as an RDT object."""
    def produce(self, nbytes):
        return self.t[nbytes]
    produce.__name__ = produce.__qualname__ = f"produce_{transport}"
    return rt.method(tensor_transport=transport)(produce)


class ActorPair:
    """Producer actor A and consumer actor B of `rt`, a started runtime module with
    Ray's actor API: `ferry`, or `ray` itself (bench/ray_baseline.py). A gets one
    producing method per transport in `transports` ("object_store" is the plain
    method); with "gloo" among them, [A, B] form a Gloo collective group.
    `actor_options` go to `rt.remote` for both classes (Ray needs
    `enable_tensor_transport=True` on a consumer that receives over a group)."""

    def __init__(self, rt, transports=("object_store", "gloo") + ONE_SIDED, actor_options=None):
        collective = importlib.import_module(rt.__name__ + ".experimental.collective")
        self.rt, self.transports, self.group = rt, tuple(transports), None

        class Producer:
            def __init__(self):
                self.t = {}

            def prepare(self, nbytes, fill):
                self.t[nbytes] = torch.full((nbytes // 4,), fill, dtype=torch.float32)
                return nbytes

            def produce(self, nbytes):
                return self.t[nbytes]

        for tr in self.transports:
            if tr != "object_store":
                setattr(Producer, f"produce_{tr}", _producing_method(rt, tr))

        class Consumer:
            def consume(self, t):
                return t.numel() if torch.is_tensor(t) else t

            def check(self, t):
                return t.numel(), float(t[0]), float(t[-1])

            def transfer_paths(self):  # ferry only
                from ferry.experimental import transfer_log
                return sorted({r["transport"] for r in transfer_log()})

        deco = rt.remote(**actor_options) if actor_options else rt.remote
        self.a, self.b = deco(Producer).remote(), deco(Consumer).remote()
        if "gloo" in self.transports:
            self.group = collective.create_collective_group([self.a, self.b], backend="gloo")

    def get(self, ref):
        return self.rt.get(ref, timeout=GET_TIMEOUT_S)

    def prepare(self, nbytes, fill):
        assert self.get(self.a.prepare.remote(nbytes, fill)) == nbytes

    def verify(self, nbytes, fill, method):
        n, first, last = self.get(self.b.check.remote(method.remote(nbytes)))
        if n != nbytes // 4 or first != fill or last != fill:
            raise AssertionError(f"{self.rt.__name__} {method}: bytes did not arrive ({n}, {first}, {last} vs {fill})")

    def verify_transport(self, nbytes, fill, transport):
        self.verify(nbytes, fill, self.method(transport))

    def method(self, transport):
        """A's producing method for a transport ("object_store" = the plain one)."""
        return self.a.produce if transport == "object_store" else getattr(self.a, f"produce_{transport}")

    def run(self, nbytes, warmup, reps, transport):
        produce = self.method(transport)
        consume, get, want = self.b.consume, self.get, nbytes // 4
        samples = []
        for i in range(warmup + reps):
            t0 = time.perf_counter()
            n = get(consume.remote(produce.remote(nbytes)))
            dt = time.perf_counter() - t0
            if n != want:
                raise AssertionError(f"consumer saw {n} elements, want {want}")
            if i >= warmup:
                samples.append(dt)
        return samples

    def pass_overhead(self, pairs, warmup, one_sided=ONE_SIDED):
        """Median of consume(4 KiB gloo ref) minus median of consume(0), alternating.

        The ref is produced once and passed again on every call: ferry drops a
        received copy when its consuming task finishes, so each call transfers
        the 4 KiB again. Also records consume(1-element tensor) for reference:
        a plain tensor argument is pickled, which costs more than an int. The
        one-sided transports' refs are passed in the same loop (their
        overheads against the same plain calls)."""
        nbytes = 4 * KiB
        self.prepare(nbytes, 1.0)
        ref = self.a.produce_gloo.remote(nbytes)
        others = {t: self.method(t).remote(nbytes) for t in one_sided}
        other_samples = {t: [] for t in one_sided}
        small = torch.zeros(1, dtype=torch.float32)
        consume, get = self.b.consume, self.get
        rdt, plain, tiny = [], [], []
        for i in range(warmup + pairs):
            t0 = time.perf_counter()
            n1 = get(consume.remote(ref))
            t1 = time.perf_counter()
            n2 = get(consume.remote(0))
            t2 = time.perf_counter()
            for t, r in others.items():
                s0 = time.perf_counter()
                if get(consume.remote(r)) != nbytes // 4:
                    raise AssertionError(f"pass-overhead consumer ({t}) returned wrong numel")
                if i >= warmup:
                    other_samples[t].append(time.perf_counter() - s0)
            if i % 4 == 0:
                t2 = time.perf_counter()
                n3 = get(consume.remote(small))
                t3 = time.perf_counter()
                if n3 != 1:
                    raise AssertionError("pass-overhead consumer returned wrong numel")
                if i >= warmup:
                    tiny.append(t3 - t2)
            if n1 != nbytes // 4 or n2 != 0:
                raise AssertionError("pass-overhead consumer returned wrong numel")
            if i >= warmup:
                rdt.append(t1 - t0)
                plain.append(t2 - t1)
        del ref, others
        r, p = statistics.median(rdt) * 1e6, statistics.median(plain) * 1e6
        out = {"rdt_call_us": r, "plain_call_us": p, "overhead_us": r - p, "pairs": pairs,
               "tiny_tensor_arg_call_us": statistics.median(tiny) * 1e6}
        for t, s in other_samples.items():
            out[f"{t}_call_us"] = statistics.median(s) * 1e6
            out[f"{t}_overhead_us"] = out[f"{t}_call_us"] - p
        return out

    def close(self):
        if self.group is not None:
            try:
                collective = importlib.import_module(self.rt.__name__ + ".experimental.collective")
                collective.destroy_collective_group(self.group)
            except Exception:
                pass


class FerryPair(ActorPair):
    """The ferry columns: starts ferry, and shuts it down on close. Transport
    "gloo_tcp" runs on a second pair whose Gloo group keeps Gloo's TCP
    connection on this host (the group is created with
    FERRY_GLOO_SAME_HOST_PATH=tcp set here); "gloo" takes the same-host read,
    the default."""

    def __init__(self):
        import ferry
        ferry.init()
        super().__init__(ferry)
        os.environ["FERRY_GLOO_SAME_HOST_PATH"] = "tcp"
        try:
            self.tcp = ActorPair(ferry, transports=("gloo",))
        finally:
            del os.environ["FERRY_GLOO_SAME_HOST_PATH"]

    def prepare(self, nbytes, fill):
        super().prepare(nbytes, fill)
        self.tcp.prepare(nbytes, fill)

    def verify_transport(self, nbytes, fill, transport):
        if transport == "gloo_tcp":
            self.tcp.verify_transport(nbytes, fill, "gloo")
        else:
            super().verify_transport(nbytes, fill, transport)

    def run(self, nbytes, warmup, reps, transport):
        if transport == "gloo_tcp":
            return self.tcp.run(nbytes, warmup, reps, "gloo")
        return super().run(nbytes, warmup, reps, transport)

    def paths(self):
        """The paths the consumers' logs name: {"gloo": ..., "gloo_tcp": ...}."""
        return {"gloo": self.get(self.b.transfer_paths.remote()),
                "gloo_tcp": self.tcp.get(self.tcp.b.transfer_paths.remote())}

    def close(self):
        self.tcp.close()
        super().close()
        self.rt.shutdown()


# ----------------------------------------------------------------- report ----

COLS = (("memcpy", "memcpy"), ("torch_gloo", "torch.dist gloo"),
        ("ferry_object_store", "ferry object_store"), ("ferry_gloo", "ferry gloo"),
        ("ferry_gloo_tcp", "ferry gloo tcp"), ("ferry_nixl", "ferry nixl"), ("ferry_shm", "ferry shm"),
        ("ferry_auto", "ferry auto"))
# ferry's columns: (result key, transport).
FERRY_COLS = (("ferry_object_store", "object_store"), ("ferry_gloo", "gloo"),
              ("ferry_gloo_tcp", "gloo_tcp"), ("ferry_nixl", "nixl"), ("ferry_shm", "shm"),
              ("ferry_auto", "auto"))


def _gbps_txt(g):
    return f"{g:.2f}" if g >= 0.1 else f"{g:.3f}" if g >= 0.01 else f"{g:.4f}"


def _cell(r):
    if r is None:
        return "n/a"
    t = f"{r['us']:,.0f} µs" if r["us"] < 1000 else f"{r['us'] / 1e3:,.1f} ms"
    return f"{_gbps_txt(r['gbps'])} GB/s ({t})"


def table_lines(results):
    header = ("size",) + tuple(lbl for _, lbl in COLS)
    rows = [header]
    for n in SIZES:
        rows.append((_label(n),) + tuple(_cell(results.get(k, {}).get(_key(n))) for k, _ in COLS))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"
    return [line(rows[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + \
        [line(r) for r in rows[1:]]


def evaluate_targets(results, overhead):
    g, t, o = (results.get(k, {}) for k in ("ferry_gloo", "torch_gloo", "ferry_object_store"))
    out = {}
    ratios = {}
    shm = results.get("ferry_shm", {})
    for n in SIZES:
        k = _key(n)
        if n >= 1 * MiB and k in g and k in t:
            ratios.setdefault("gloo_vs_torch", {})[k] = g[k]["gbps"] / t[k]["gbps"]
        if n >= 1 * MiB and k in g and k in shm:
            ratios.setdefault("gloo_vs_shm", {})[k] = g[k]["gbps"] / shm[k]["gbps"]
        if n >= 16 * MiB and k in g and k in o:
            ratios.setdefault("gloo_vs_object_store", {})[k] = g[k]["gbps"] / o[k]["gbps"]
    if ratios.get("gloo_vs_torch"):
        out["gloo_ge_1x_torch_gloo_at_ge_1MiB"] = all(
            v >= TARGET_GLOO_VS_TORCH for v in ratios["gloo_vs_torch"].values())
    if ratios.get("gloo_vs_object_store"):
        out["gloo_ge_2x_object_store_at_ge_16MiB"] = all(
            v >= TARGET_GLOO_VS_OBJSTORE for v in ratios["gloo_vs_object_store"].values())
    if ratios.get("gloo_vs_shm"):
        out["gloo_ge_0.9x_shm_at_ge_1MiB"] = all(
            v >= TARGET_GLOO_VS_SHM for v in ratios["gloo_vs_shm"].values())
    if overhead:
        out["pass_overhead_4KiB_le_100us"] = overhead["overhead_us"] <= TARGET_PASS_OVERHEAD_US
    # The one-sided transports at 256 MiB.
    big = _key(256 * MiB)
    m = results.get("memcpy", {}).get(big)
    for col, name in (("ferry_shm", "shm"), ("ferry_nixl", "nixl"), ("ferry_auto", "auto")):
        r = results.get(col, {}).get(big)
        if r and big in t:
            ratios.setdefault(f"{name}_vs_torch", {})[big] = r["gbps"] / t[big]["gbps"]
        if r and m:
            ratios.setdefault(f"{name}_vs_memcpy", {})[big] = r["gbps"] / m["gbps"]
    if ratios.get("shm_vs_memcpy"):
        out["shm_ge_0.6x_memcpy_at_256MiB"] = ratios["shm_vs_memcpy"][big] >= TARGET_SHM_VS_MEMCPY
    if ratios.get("shm_vs_torch"):
        out["shm_ge_4x_torch_gloo_at_256MiB"] = ratios["shm_vs_torch"][big] >= TARGET_SHM_VS_TORCH
    if ratios.get("nixl_vs_torch"):
        out["nixl_ge_2.5x_torch_gloo_at_256MiB"] = ratios["nixl_vs_torch"][big] >= TARGET_NIXL_VS_TORCH
    if overhead:
        for name in ("nixl", "shm"):
            if f"{name}_overhead_us" in overhead:
                out[f"{name}_pass_overhead_4KiB_le_gloo"] = \
                    overhead[f"{name}_overhead_us"] <= overhead["overhead_us"]
    return out, ratios


def plot(results, png_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    styles = {"memcpy": ("k", ":", "s"), "torch_gloo": ("tab:orange", "-", "o"),
              "ferry_object_store": ("tab:blue", "-", "^"), "ferry_gloo": ("tab:green", "-", "D"),
              "ferry_gloo_tcp": ("tab:olive", "--", "d"), "ferry_nixl": ("tab:purple", "-", "v"),
              "ferry_shm": ("tab:red", "-", "P"),
              "ferry_auto": ("tab:brown", "--", "x")}
    for k, lbl in COLS:
        r = results.get(k)
        if not r:
            continue
        xs = [n for n in SIZES if _key(n) in r]
        c, ls, m = styles[k]
        ax.plot(xs, [r[_key(n)]["gbps"] for n in xs], color=c, linestyle=ls, marker=m, label=lbl)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(list(SIZES))
    ax.set_xticklabels([_label(n) for n in SIZES])
    ax.set_xlabel("tensor size (float32)")
    ax.set_ylabel("GB/s (median, 1 GB = 1e9 B)")
    ax.set_title("actor → actor tensor transfer (end to end)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)


def _forced_gloo_overhead(quick):
    """The 4 KiB pass overhead with FERRY_INLINE_TENSOR_BYTES=0 and
    FERRY_GLOO_SAME_HOST_PATH=tcp, so the 4 KiB moves over the Gloo group's
    wire rather than ferry's inline or same-host read."""
    import subprocess
    env = dict(os.environ, FERRY_INLINE_TENSOR_BYTES="0", FERRY_GLOO_SAME_HOST_PATH="tcp")
    cmd = [sys.executable, os.path.abspath(__file__), "--overhead-only"] + (["--quick"] if quick else [])
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    for line in out.stdout.splitlines():
        if line.startswith("OVERHEAD "):
            return json.loads(line[len("OVERHEAD "):])
    raise RuntimeError(f"forced-gloo overhead run failed (rc {out.returncode}): "
                       + (out.stderr.strip().splitlines() or ["no output"])[-1][:200])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer reps (~1 minute)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "transfer.json"))
    ap.add_argument("--docs-png", default=os.path.join(ROOT, "docs", "transfer.png"),
                    help="where to copy the plot ('' to skip)")
    ap.add_argument("--overhead-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--breakdown", action="store_true",
                    help="instead: where the time of a 4 KiB RDT round goes, stage by stage "
                         "(bench/rdt_breakdown.py)")
    args = ap.parse_args(argv)
    if args.breakdown:
        sys.path.insert(0, HERE)
        import rdt_breakdown
        return rdt_breakdown.main([])
    p = _params(args.quick)
    if args.overhead_only:  # child run (see _forced_gloo_overhead): prints one JSON line
        fp = FerryPair()
        try:
            print("OVERHEAD " + json.dumps(fp.pass_overhead(p["overhead_pairs"], p["overhead_warmup"],
                                                            one_sided=())))
        finally:
            fp.close()
        return 0
    t_start = time.perf_counter()
    load_start = os.getloadavg()
    print(f"transfer bench ({'quick' if args.quick else 'full'}); load avg {load_start[0]:.2f} "
          f"{load_start[1]:.2f} {load_start[2]:.2f} on {os.cpu_count()} CPUs", flush=True)

    results = {k: {} for k, _ in COLS}
    errors = {}
    overhead = paths = None
    tp = fp = None
    try:
        try:
            tp = TorchPair()
        except Exception as e:
            errors["torch_gloo"] = f"{type(e).__name__}: {e}".splitlines()[0][:200]
            traceback.print_exc()
        try:
            fp = FerryPair()
        except Exception as e:
            errors["ferry"] = f"{type(e).__name__}: {e}".splitlines()[0][:200]
            traceback.print_exc()
        # Per size, the columns are measured in interleaved rounds (torch, ferry
        # object_store, ferry gloo, repeat) so that load from other work on the
        # machine hits them alike; the samples of all rounds are pooled.
        for idx, n in enumerate(SIZES):
            k, w, r = _key(n), p["warmup"][n], p["reps"][n]
            rounds = min(ROUNDS, r)
            per_round = -(-r // rounds)
            fill = float(idx + 2)
            t0 = time.perf_counter()
            samples = {c: [] for c, _ in COLS}
            round_meds = {c: [] for c, _ in COLS}
            samples["memcpy"] = bench_memcpy(n, w, per_round * rounds)
            if fp and "ferry" not in errors:
                try:
                    fp.prepare(n, fill)
                    for _, tr in FERRY_COLS:
                        fp.verify_transport(n, fill, tr)
                except Exception as e:
                    errors["ferry"] = f"{type(e).__name__}: {e}".splitlines()[0][:200]
                    traceback.print_exc()
            for rnd in range(rounds):
                wr = w if rnd == 0 else max(1, w // rounds)  # re-warm after the other systems ran
                if tp and "torch_gloo" not in errors:
                    try:
                        got = tp.run(n, wr, per_round, fill + rnd)
                        samples["torch_gloo"] += got
                        round_meds["torch_gloo"].append(statistics.median(got))
                    except Exception as e:
                        errors["torch_gloo"] = f"{type(e).__name__}: {e}".splitlines()[0][:200]
                        traceback.print_exc()
                if fp and "ferry" not in errors:
                    try:
                        for c, tr in FERRY_COLS:
                            got = fp.run(n, wr, per_round, tr)
                            samples[c] += got
                            round_meds[c].append(statistics.median(got))
                    except Exception as e:
                        errors["ferry"] = f"{type(e).__name__}: {e}".splitlines()[0][:200]
                        traceback.print_exc()
            if fp and "ferry" not in errors:
                try:
                    fill2 = fill + 0.5  # new values after timing: still arriving, not stale pool data
                    fp.prepare(n, fill2)
                    for _, tr in FERRY_COLS:
                        fp.verify_transport(n, fill2, tr)
                except Exception as e:
                    errors["ferry"] = f"{type(e).__name__}: {e}".splitlines()[0][:200]
                    traceback.print_exc()
            for c, _ in COLS:
                if samples[c] and not (c.startswith("ferry") and "ferry" in errors) \
                        and not (c == "torch_gloo" and "torch_gloo" in errors):
                    results[c][k] = _summ(n, samples[c])
                    results[c][k]["rounds"] = rounds if c != "memcpy" else 1
                    if len(round_meds[c]) > 1:
                        results[c][k]["round_median_us"] = [v * 1e6 for v in round_meds[c]]
                        results[c][k]["round_spread"] = max(round_meds[c]) / min(round_meds[c])
            print(f"  {_label(n):>7}: {time.perf_counter() - t0:5.1f}s  " +
                  "  ".join(f"{lbl} {results[c][k]['gbps']:.3f}" for c, lbl in COLS if k in results[c]),
                  flush=True)
        if fp and "ferry" not in errors:
            try:
                paths = fp.paths()
            except Exception as e:
                errors["ferry_paths"] = f"{type(e).__name__}: {e}".splitlines()[0][:200]
        if fp and "ferry" not in errors:
            try:
                overhead = fp.pass_overhead(p["overhead_pairs"], p["overhead_warmup"])
            except Exception as e:
                errors["ferry_pass_overhead"] = f"{type(e).__name__}: {e}".splitlines()[0][:200]
                traceback.print_exc()
    finally:
        if tp:
            tp.close()
        if fp:
            try:
                fp.close()
            except Exception:
                traceback.print_exc()
    overhead_gloo = None
    if fp and "ferry" not in errors:
        try:
            overhead_gloo = _forced_gloo_overhead(args.quick)
        except Exception as e:
            errors["ferry_pass_overhead_forced_gloo"] = f"{type(e).__name__}: {e}".splitlines()[0][:200]
    load_end = os.getloadavg()
    elapsed = time.perf_counter() - t_start

    targets, ratios = evaluate_targets(results, overhead)
    lines = table_lines(results)
    print()
    print("\n".join(lines))
    print()
    if overhead:
        print(f"4 KiB pass overhead: {overhead['overhead_us']:.1f} µs "
              f"= consumer call with a 4 KiB gloo ref {overhead['rdt_call_us']:.1f} µs − same call "
              f"with a plain int {overhead['plain_call_us']:.1f} µs (medians of {overhead['pairs']} "
              f"alternating pairs, end to end with get)")
        print(f"  (FERRY_INLINE_TENSOR_BYTES={INLINE_BYTES}: RDT objects up to that size, here "
              f"{', '.join(_label(n) for n in SIZES if n <= INLINE_BYTES) or 'none'}, move inline over "
              "the control channel, not through the Gloo group; the ferry gloo column too)")
    if overhead:
        for name in ONE_SIDED:
            if f"{name}_overhead_us" in overhead:
                print(f"4 KiB pass overhead with {name}: {overhead[name + '_overhead_us']:.1f} µs "
                      f"= {overhead[name + '_call_us']:.1f} − {overhead['plain_call_us']:.1f} µs "
                      "(same loop)")
    if overhead_gloo:
        print(f"4 KiB pass overhead over the Gloo group's wire (FERRY_INLINE_TENSOR_BYTES=0, "
              f"FERRY_GLOO_SAME_HOST_PATH=tcp): "
              f"{overhead_gloo['overhead_us']:.1f} µs = {overhead_gloo['rdt_call_us']:.1f} − "
              f"{overhead_gloo['plain_call_us']:.1f} µs")
    if overhead:
        print(f"plain call RTT: {overhead['plain_call_us']:.1f} µs (int argument); with a "
              f"1-element plain tensor argument: {overhead['tiny_tensor_arg_call_us']:.1f} µs")
    if paths:
        print("paths in the consumers' transfer logs: ferry gloo " + "/".join(paths["gloo"]) +
              ", ferry gloo tcp " + "/".join(paths["gloo_tcp"]) +
              " (inline: objects up to FERRY_INLINE_TENSOR_BYTES)")
    for name, per in ratios.items():
        print(f"{name}: " + ", ".join(f"{k} {v:.2f}x" for k, v in per.items()))
    tgt_text = {"gloo_ge_1x_torch_gloo_at_ge_1MiB": "ferry gloo ≥ 1.0× torch.distributed gloo at ≥ 1 MiB",
                "gloo_ge_2x_object_store_at_ge_16MiB": "ferry gloo ≥ 2× ferry object_store at ≥ 16 MiB",
                "gloo_ge_0.9x_shm_at_ge_1MiB": "ferry gloo (same host) ≥ 0.9× ferry shm at ≥ 1 MiB",
                "pass_overhead_4KiB_le_100us": "4 KiB pass overhead ≤ 100 µs",
                "shm_ge_0.6x_memcpy_at_256MiB": "ferry shm ≥ 0.6× warm memcpy at 256 MiB",
                "shm_ge_4x_torch_gloo_at_256MiB": "ferry shm ≥ 4× torch.distributed gloo at 256 MiB",
                "nixl_ge_2.5x_torch_gloo_at_256MiB": "ferry nixl ≥ 2.5× torch.distributed gloo at 256 MiB",
                "nixl_pass_overhead_4KiB_le_gloo": "4 KiB pass overhead with nixl ≤ gloo's",
                "shm_pass_overhead_4KiB_le_gloo": "4 KiB pass overhead with shm ≤ gloo's"}
    for k, ok in targets.items():
        print(f"target {tgt_text[k]}: {'met' if ok else 'MISSED'}")
    noisy = [f"{lbl} {_label(n)} {results[c][_key(n)]['round_spread']:.1f}x"
             for n in SIZES for c, lbl in COLS
             if results.get(c, {}).get(_key(n), {}).get("round_spread", 1.0) > NOISY_SPREAD]
    if noisy:
        print(f"noisy (slowest/fastest round median > {NOISY_SPREAD:.0f}x; the machine was shared): "
              + ", ".join(noisy))
    stalled = [n for n in SIZES[:3] if max(results.get("torch_gloo", {}).get(_key(n), {})
                                           .get("round_median_us", [0])) > TORCH_STALL_US]
    if stalled:
        print("torch.dist gloo round medians (µs): " + "; ".join(
            f"{_label(n)} " + ", ".join(f"{v:,.0f}" for v in results["torch_gloo"][_key(n)]["round_median_us"])
            for n in stalled) + f" -- rounds over {TORCH_STALL_US / 1e3:.0f} ms are torch's ~4 ms "
            "per-message stalls when the CPUs are contended; ratios against it at these sizes "
            "flatter ferry")
    for k, e in errors.items():
        print(f"{k}: n/a ({e})")
    print("Buffers warm: producer tensors preallocated and touched; torch receives into one "
          "preallocated tensor; ferry's receive pool reuses memory; warm-up reps before timing. "
          "µs/ms = median time per transfer; GB = 1e9 bytes.")
    print(f"load avg at start {load_start[0]:.2f}, at end {load_end[0]:.2f} "
          f"(1-min, {os.cpu_count()} CPUs); run took {elapsed:.0f}s"
          + (" (--quick)" if args.quick else ""))

    doc = {
        "meta": {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "quick": args.quick, "elapsed_s": round(elapsed, 1),
            "loadavg_start": list(load_start), "loadavg_end": list(load_end),
            "warmup": {_key(n): v for n, v in p["warmup"].items()},
            "reps": {_key(n): v for n, v in p["reps"].items()},
            "rounds": f"up to {ROUNDS} interleaved rounds per size (torch, object_store, gloo), "
                      "samples pooled; reps rounded up to a multiple of the rounds",
            "buffers": "warm: producer tensors preallocated and touched; torch receiver preallocated; "
                       "ferry receive pool reuses memory",
            "units": {"gbps": "bytes / median seconds per transfer / 1e9", "us": "median µs per transfer"},
            "columns": {
                "memcpy": "same process dst.copy_(src), preallocated dst",
                "torch_gloo": "torch.distributed gloo send + 1-element ack between two processes, "
                              "timed on the sender",
                "ferry_object_store": "ferry.get(B.consume.remote(A.produce.remote(n))), plain method",
                "ferry_gloo": "same, A.produce_gloo decorated tensor_transport='gloo', group [A, B] "
                              "(same host: the bytes move through shared memory)",
                "ferry_gloo_tcp": "same as ferry_gloo, another pair with FERRY_GLOO_SAME_HOST_PATH=tcp "
                                  "(Gloo's TCP connection)",
                "ferry_nixl": "same, tensor_transport='nixl' (UCX one-sided get; no group)",
                "ferry_shm": "same, tensor_transport='shm' (same-host one-copy pull)",
                "ferry_auto": "same, tensor_transport='auto' (shm on one host)",
            },
        },
        "table": lines,
        "results": results,
        "pass_overhead_4KiB": overhead,
        "paths": paths,
        "inline_tensor_bytes": INLINE_BYTES,
        "pass_overhead_4KiB_note": "RDT objects up to FERRY_INLINE_TENSOR_BYTES move inline over "
                                   "the control channel; _forced_gloo sets it to 0",
        "pass_overhead_4KiB_forced_gloo": overhead_gloo,
        "ratios": ratios,
        "targets": {"shm_vs_memcpy_min_at_256MiB": TARGET_SHM_VS_MEMCPY,
                    "shm_vs_torch_min_at_256MiB": TARGET_SHM_VS_TORCH,
                    "nixl_vs_torch_min_at_256MiB": TARGET_NIXL_VS_TORCH,
                    "gloo_vs_torch_min_at_ge_1MiB": TARGET_GLOO_VS_TORCH,
                    "gloo_vs_object_store_min_at_ge_16MiB": TARGET_GLOO_VS_OBJSTORE,
                    "gloo_vs_shm_min_at_ge_1MiB": TARGET_GLOO_VS_SHM,
                    "pass_overhead_4KiB_us_max": TARGET_PASS_OVERHEAD_US},
        "targets_met": targets,
        "noisy_cells": noisy,
        "torch_stalled_sizes": [_key(n) for n in stalled],
        "errors": errors,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(doc, fh, indent=2)
    print(f"wrote {args.out}")
    png = os.path.splitext(args.out)[0] + ".png"
    try:
        plot(results, png)
        print(f"wrote {png}")
        if args.docs_png:
            shutil.copyfile(png, args.docs_png)
            print(f"copied to {args.docs_png}")
    except Exception as e:
        errors["plot"] = f"{type(e).__name__}: {e}"
        traceback.print_exc()
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
