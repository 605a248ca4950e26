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

    def total(self, values):
        return sum(values)


@ferry.remote
class Stats:
    def mean(self, array):
        return float(array.mean())


counter = Counter.remote(10)
refs = [counter.add.remote(i) for i in range(5)]        # run in submission order
print("running sums:", ferry.get(refs))                 # [10, 11, 13, 16, 20]

# ObjectRefs passed as arguments (even nested in a list) are resolved first.
print("total:", ferry.get(counter.total.remote(refs)))  # 70

# Large arrays travel through shared memory, copied once.
big = ferry.put(np.arange(10_000_000, dtype=np.float64))
stats = Stats.remote()
ready, not_ready = ferry.wait([stats.mean.remote(big)], num_returns=1, timeout=30)
print("mean:", ferry.get(ready[0]))                     # 4999999.5

ferry.shutdown()
