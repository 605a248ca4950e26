"""ferry in one page: actors, calls, refs as arguments, put/get/wait.

Run: .venv/bin/python examples/quickstart.py   (or `make demo`)
"""
import numpy as np

import ferry


@ferry.remote
class Counter:
    def __init__(self, start):
        self.value = start

    def add(self, k):
        self.value += k
        return self.value

    def total(self, *values):
        return sum(values)

    def total_of_refs(self, refs):
        return sum(ferry.get(refs))


@ferry.remote
class Stats:
    def mean(self, array):
        return float(array.mean())


counter = Counter.remote(10)
refs = [counter.add.remote(i) for i in range(5)]        # run in submission order
print("running sums:", ferry.get(refs))                 # [10, 11, 13, 16, 20]

# ObjectRefs passed as arguments are resolved to their values first...
print("total:", ferry.get(counter.total.remote(*refs)))  # 70
# ... while refs nested in a container arrive as refs, for the task to get.
print("total:", ferry.get(counter.total_of_refs.remote(refs)))  # 70

# Large arrays travel through shared memory, copied once.
big = ferry.put(np.arange(10_000_000, dtype=np.float64))
stats = Stats.remote()
ready, not_ready = ferry.wait([stats.mean.remote(big)], num_returns=1, timeout=30)
print("mean:", ferry.get(ready[0]))                     # 4999999.5

ferry.shutdown()
