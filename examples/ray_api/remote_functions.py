# Remote functions with `import ferry as ray`: tasks on pooled workers,
# refs in and out, a nested call, options, and a retry after a crash.
import os
import tempfile

import ferry as ray


@ray.remote
def square(x):
    return x * x


@ray.remote(num_returns=2)
def divmod_task(a, b):
    return divmod(a, b)


@ray.remote
def sum_of_squares(n):
    return sum(ray.get([square.remote(i) for i in range(n)]))  # nested tasks


@ray.remote(max_retries=2)
def crash_once(marker):
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)  # the worker dies; the task runs again on another one
    return "recovered"


print("squares:", ray.get([square.remote(i) for i in range(5)]))
q, r = divmod_task.remote(17, 5)
print("divmod:", ray.get([q, r]))
print("chained:", ray.get(square.remote(square.remote(3))))
print("nested:", ray.get(sum_of_squares.remote(4)))
print("2 cpus:", ray.get(square.options(num_cpus=2).remote(7)))
with tempfile.TemporaryDirectory() as d:
    print("retry:", ray.get(crash_once.remote(os.path.join(d, "crashed"))))
