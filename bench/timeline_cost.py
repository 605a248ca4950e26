#!/usr/bin/env python3
"""What recording the timeline costs: bench/actor_calls.py's sync RTT and
async calls/s cells with recording on (the default, FERRY_TIMELINE_SIZE
10000) and off (FERRY_TIMELINE_SIZE=0), in fresh drivers that alternate
(off, on, off, on, ...) so that drift of the machine hits both alike.

Prints a table (cell | off | on | on/off | target) with the median of the
rounds, and writes bench/results/timeline_cost.json.

    python bench/timeline_cost.py             # 5 rounds each (~1 minute)
    python bench/timeline_cost.py --rounds 3
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

TARGET_RTT_RATIO = 1.05  # recording costs at most 5% of the call round trip

CHILD = r"""
import json, sys, time
import ferry

ferry.init(num_cpus=2)


@ferry.remote
class Echo:
    def echo(self, x):
        return x


a = Echo.remote()
for _ in range(300):
    ferry.get(a.echo.remote(1), timeout=60)
samples = []
for _ in range(int(sys.argv[1])):
    t0 = time.perf_counter_ns()
    ferry.get(a.echo.remote(1), timeout=60)
    samples.append(time.perf_counter_ns() - t0)
samples.sort()
n = int(sys.argv[2])
t0 = time.perf_counter()
assert ferry.get([a.echo.remote(i) for i in range(n)], timeout=120) == list(range(n))
rate = n / (time.perf_counter() - t0)
print(json.dumps({"rtt_us": samples[len(samples) // 2] / 1000, "calls_per_s": rate}))
ferry.shutdown()
"""


def run_child(timeline_size, calls, burst):
    env = dict(os.environ, FERRY_TIMELINE_SIZE=str(timeline_size))
    out = subprocess.run([sys.executable, "-c", CHILD, str(calls), str(burst)], env=env,
                         capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark driver failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=3000, help="timed sync calls per round")
    ap.add_argument("--burst", type=int, default=10000, help="async calls per round")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "results", "timeline_cost.json"))
    args = ap.parse_args(argv)
    runs = {"off": [], "on": []}
    for _ in range(args.rounds):
        for mode, size in (("off", 0), ("on", 10000)):
            runs[mode].append(run_child(size, args.calls, args.burst))
    med = {mode: {k: statistics.median(r[k] for r in rs) for k in ("rtt_us", "calls_per_s")}
           for mode, rs in runs.items()}
    rtt_ratio = med["on"]["rtt_us"] / med["off"]["rtt_us"]
    rate_ratio = med["on"]["calls_per_s"] / med["off"]["calls_per_s"]
    print(f"{'cell':<18}{'off':>12}{'on':>12}{'on/off':>9}   target")
    print(f"{'sync RTT (us)':<18}{med['off']['rtt_us']:>12.1f}{med['on']['rtt_us']:>12.1f}"
          f"{rtt_ratio:>9.3f}   <= {TARGET_RTT_RATIO:.2f} "
          f"{'met' if rtt_ratio <= TARGET_RTT_RATIO else 'MISSED'}")
    print(f"{'async calls/s':<18}{med['off']['calls_per_s']:>12.0f}"
          f"{med['on']['calls_per_s']:>12.0f}{rate_ratio:>9.3f}")
    print(f"(median of {args.rounds} alternating rounds, {args.calls} timed calls and "
          f"{args.burst} async calls each)")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"when": time.strftime("%Y-%m-%d %H:%M:%S"), "rounds": runs, "median": med,
                   "rtt_ratio": rtt_ratio, "calls_ratio": rate_ratio}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
