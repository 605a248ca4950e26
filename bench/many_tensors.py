#!/usr/bin/env python3
"""Many tensors in one object: N tensors of S bytes against one tensor of N*S bytes.

Actor A's method returns either a list of N float32 tensors of S bytes each or
one tensor of N*S bytes, all preallocated and touched; actor B's `consume`
returns how many bytes it received. The driver times
`ferry.get(B.consume.remote(A.produce.remote(shape)))` end to end, per
transport (`gloo` with a group [A, B] (same host: shared memory), `gloo_tcp`:
the same over Gloo's TCP, `nixl`, `shm`, `auto`, `object_store`), in
interleaved rounds (many, one, many, one, ...) so that load from other work
hits both shapes alike. Prints per transport the median time of each shape,
the ratio many/one and the target (≤ 1.3x).

Defaults are the issue's: 10,000 tensors of 200 KB (2 GB). Memory: each
transport holds one copy of each shape in A and receives into B's pool, so
the run needs ~4x the total bytes of RAM (8 GB at the default).

    python bench/many_tensors.py                   # 10,000 x 200 KB, 3 reps
    python bench/many_tensors.py --count 1000 --bytes 200000 --reps 5
    python bench/many_tensors.py --only shm,gloo
"""
import argparse
import datetime
import json
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET_RATIO = 1.3
TRANSPORTS = ("gloo", "gloo_tcp", "nixl", "shm", "auto", "object_store")
GET_TIMEOUT_S = 600.0


def make_pair(ferry, transport):
    """Producer and consumer actors for one transport (a Gloo group for gloo*)."""
    from ferry.experimental.collective import create_collective_group
    wire = "gloo" if transport.startswith("gloo") else transport

    class Producer:
        def __init__(self):
            self.many = self.one = None

        def prepare(self, count, nbytes):
            # Touched now (fresh pages cost ~0.3 GB/s here), reused by every rep.
            self.many = [torch.full((nbytes // 4,), float(i % 7)) for i in range(count)]
            self.one = torch.ones(count * nbytes // 4)
            return count

        def produce(self, shape):
            return self.many if shape == "many" else self.one

    if wire != "object_store":
        Producer.produce = ferry.method(tensor_transport=wire)(Producer.produce)

    class Consumer:
        def consume(self, value):
            tensors = value if isinstance(value, list) else [value]
            return sum(t.numel() * t.element_size() for t in tensors)

        def paths(self):
            from ferry.experimental import transfer_log
            return sorted({r["transport"] for r in transfer_log()})

    env_key = "FERRY_GLOO_SAME_HOST_PATH"
    if transport == "gloo_tcp":
        os.environ[env_key] = "tcp"  # the actors started now inherit it
    try:
        a, b = ferry.remote(Producer).remote(), ferry.remote(Consumer).remote()
        group = create_collective_group([a, b], backend="gloo") if wire == "gloo" else None
    finally:
        os.environ.pop(env_key, None)
    return a, b, group


def time_shape(ferry, a, b, shape, want):
    t0 = time.perf_counter()
    got = ferry.get(b.consume.remote(a.produce.remote(shape)), timeout=GET_TIMEOUT_S)
    dt = time.perf_counter() - t0
    if got != want:
        raise AssertionError(f"{shape}: consumer saw {got} bytes, want {want}")
    return dt


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--bytes", type=int, default=200_000, help="bytes per tensor (multiple of 4)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated transports (default: all)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "many_tensors.json"))
    args = ap.parse_args(argv)
    transports = [t for t in args.only.split(",") if t] or list(TRANSPORTS)
    total = args.count * (args.bytes // 4) * 4
    import ferry
    ferry.init()
    print(f"many tensors: {args.count:,} x {args.bytes:,} B = {total / 1e9:.2f} GB vs one tensor "
          f"of {total / 1e9:.2f} GB; {args.reps} reps each, interleaved; load avg "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
    rows, results = [], {}
    try:
        for tr in transports:
            a, b, group = make_pair(ferry, tr)
            ferry.get(a.prepare.remote(args.count, args.bytes), timeout=GET_TIMEOUT_S)
            samples = {"many": [], "one": []}
            for shape in ("many", "one"):  # warm-up: fills the consumer's receive pool
                time_shape(ferry, a, b, shape, total)
            for _ in range(args.reps):
                for shape in ("many", "one"):
                    samples[shape].append(time_shape(ferry, a, b, shape, total))
            paths = ferry.get(b.paths.remote(), timeout=GET_TIMEOUT_S)
            many, one = (statistics.median(samples[s]) for s in ("many", "one"))
            ratio = many / one
            results[tr] = {"many_s": many, "one_s": one, "ratio": ratio, "paths": paths,
                           "samples": samples}
            rows.append((tr, f"{many * 1e3:,.0f} ms ({total / many / 1e9:.2f} GB/s)",
                         f"{one * 1e3:,.0f} ms ({total / one / 1e9:.2f} GB/s)", f"{ratio:.2f}x",
                         "met" if ratio <= TARGET_RATIO else "MISSED", "/".join(paths)))
            print(f"  {tr}: many {many * 1e3:,.0f} ms, one {one * 1e3:,.0f} ms, {ratio:.2f}x",
                  flush=True)
            if group is not None:
                from ferry.experimental.collective import destroy_collective_group
                destroy_collective_group(group)
            ferry.kill(a)
            ferry.kill(b)
            del a, b
    finally:
        ferry.shutdown()
    header = ("transport", f"{args.count:,} tensors", "one tensor", "many / one",
              f"target ≤ {TARGET_RATIO}x", "paths logged")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"
    print()
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))
    print("medians of end-to-end ferry.get(B.consume.remote(A.produce.remote(shape))); "
          "GB = 1e9 bytes; producer tensors preallocated and touched; one warm-up per shape")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                   "count": args.count, "bytes": args.bytes, "reps": args.reps,
                   "target_ratio": TARGET_RATIO, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
