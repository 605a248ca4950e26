"""Unmodified Ray programs on ferry: `python -m ferry run --as-ray` and
`import ferry.as_ray` make `import ray` resolve to ferry; the parts of Ray
ferry lacks fail with an error that names them (docs/ray-compat.md).

The programs run as real drivers in subprocesses; the in-process tests only
look at the aliases and install / uninstall the finder around themselves.
"""
import importlib
import os
import pickle
import subprocess
import sys
import types

import cloudpickle
import pytest

from conftest import PYTHON_DIR, write_script
from ferry._private import ray_compat

TIMEOUT_S = 120

# A Ray program: the ray.* modules ferry implements, actors, put / get /
# wait, Ray's exception names, and the RDT guide's Gloo example verbatim.
RAY_PROGRAM = """\
{header}import sys
import threading

import torch
import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError
from ray.experimental.collective import create_collective_group
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

ray.init()


@ray.remote
class Counter:
    def __init__(self, start):
        self.value = start

    def incr(self, k):
        self.value += k
        return self.value

    def fail(self):
        raise ValueError("boom")

    def hang(self):
        threading.Event().wait(120)  # until the actor is killed


node_id = ray.nodes()[0]["NodeID"]
strategy = NodeAffinitySchedulingStrategy(node_id, soft=False)
c = Counter.options(scheduling_strategy=strategy).remote(10)
assert isinstance(c.incr.remote(1), ray.ObjectRef)
ready, _ = ray.wait([c.incr.remote(ray.put(5))], num_returns=1, timeout=60)
print("counter", ray.get(ready[0], timeout=60))
try:
    ray.get(c.fail.remote(), timeout=60)
except RayTaskError as e:
    print("task error", isinstance(e, ValueError))
hung = c.hang.remote()
try:
    ray.get(hung, timeout=0.1)
except GetTimeoutError:
    print("timeout")
ray.kill(c)
try:
    ray.get(hung, timeout=60)
except RayActorError:
    print("actor died")

@ray.remote
class MyActor:
    @ray.method(tensor_transport="gloo")
    def random_tensor(self):
        return torch.randn(1000, 1000)

    def sum(self, tensor: torch.Tensor):
        return torch.sum(tensor)

sender, receiver = MyActor.remote(), MyActor.remote()
group = create_collective_group([sender, receiver], backend="torch_gloo")

# The tensor will be stored by the `sender` actor instead of in Ray's object
# store.
tensor = sender.random_tensor.remote()
result = receiver.sum.remote(tensor)
print(ray.get(result))
print("args", sys.argv[1:])
"""

EXPECTED_LINES = ["counter 16", "task error True", "timeout", "actor died"]


def _run(command, cwd):
    proc = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S,
                          stdin=subprocess.DEVNULL, cwd=str(cwd))
    info = f"rc={proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    return proc, info


def _ferry_run(tmp_path, body, *args, as_ray=True):
    path = write_script(tmp_path, body, "ray_program.py")
    flags = ["--as-ray"] if as_ray else []
    return _run([sys.executable, "-m", "ferry", "run", *flags, str(path), *args], tmp_path)


def _check_ray_program_ran(proc, info):
    assert proc.returncode == 0, info
    lines = proc.stdout.splitlines()
    assert lines[:4] == EXPECTED_LINES, info
    assert lines[4].startswith("tensor("), info  # receiver.sum of the tensor sent over Gloo
    assert lines[5] == "args ['--flag', 'x']", info


# --- whole programs ------------------------------------------------------------


def test_ray_program_runs_unchanged_under_ferry_run_as_ray(tmp_path):
    proc, info = _ferry_run(tmp_path, RAY_PROGRAM.format(header=""), "--flag", "x")
    _check_ray_program_ran(proc, info)


def test_ray_program_runs_with_the_one_line_import(tmp_path):
    header = "import ferry.as_ray  # noqa: F401\n"
    path = write_script(tmp_path, RAY_PROGRAM.format(header=header), "ray_program.py")
    proc, info = _run([sys.executable, str(path), "--flag", "x"], tmp_path)
    _check_ray_program_ran(proc, info)


@pytest.mark.parametrize("statement, missing", [
    ("import ray.data", "ray.data"),
    ("from ray import tune", "ray.tune"),
    ("import ray.util.collective", "ray.util.collective"),
    ("from ray.util import placement_group", "ray.util.placement_group"),
    ("from ray.exceptions import OwnerDiedError", "ray.exceptions.OwnerDiedError"),
])
def test_a_ray_module_ferry_lacks_fails_naming_it(tmp_path, statement, missing):
    proc, info = _ferry_run(tmp_path, f"import ray\n{statement}\nprint('not reached')\n")
    assert proc.returncode == 1, info
    assert "not reached" not in proc.stdout, info
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"ModuleNotFoundError: {missing} is not part of ferry's "
                           f"Ray-compatible surface"), info
    assert "docs/ray-compat.md" in last, info


def test_a_ray_function_ferry_lacks_fails_naming_it(tmp_path):
    proc, info = _ferry_run(tmp_path, "import ray\nray.get_runtime_context()\n")
    assert proc.returncode == 1, info
    last = proc.stderr.strip().splitlines()[-1]
    assert ("RayFeatureNotSupportedError: ray.get_runtime_context is not part of ferry's"
            in last), info
    assert " init, " in last, info  # lists what ray does provide


def test_ferry_run_of_a_missing_script_exits_2(tmp_path):
    proc, info = _run([sys.executable, "-m", "ferry", "run", "--as-ray",
                       str(tmp_path / "absent.py")], tmp_path)
    assert proc.returncode == 2, info
    assert "no such file" in proc.stderr, info


@pytest.mark.parametrize("as_ray", [True, False])
def test_ferry_run_propagates_the_exit_status(tmp_path, as_ray):
    proc, info = _ferry_run(tmp_path, "import sys\nsys.exit(3)\n", as_ray=as_ray)
    assert proc.returncode == 3, info


def test_ferry_run_without_as_ray_leaves_ray_alone(tmp_path):
    body = ("import importlib.util, sys\n"
            "print(importlib.util.find_spec('ray') is None or 'ferry' not in str(\n"
            "    importlib.util.find_spec('ray').origin), __name__, sys.path[0])\n")
    proc, info = _ferry_run(tmp_path, body, as_ray=False)
    assert proc.returncode == 0, info
    assert proc.stdout.split() == ["True", "__main__", os.path.realpath(tmp_path)], info


def test_no_package_named_ray_is_installed(tmp_path):
    proc, info = _run([sys.executable, "-c",
                       "import importlib.util; s = importlib.util.find_spec('ray'); "
                       "print(s.origin if s else 'none')"], tmp_path)
    assert proc.returncode == 0, info
    origin = proc.stdout.strip()
    if origin != "none" and not origin.startswith(PYTHON_DIR):
        pytest.skip(f"a real Ray is installed here ({origin})")
    assert origin == "none", info


# --- the aliases, in this process -------------------------------------------------


@pytest.fixture
def ray():
    """`ray` resolved through the finder; uninstalled afterwards."""
    assert "ray" not in sys.modules
    ray_compat.install()
    try:
        yield importlib.import_module("ray")
    finally:
        ray_compat.uninstall()
    assert "ray" not in sys.modules and not ray_compat.installed()


def test_aliases_are_ferrys_own_objects(ray):
    import ferry
    from ferry.exceptions import ActorDiedError, FerryError, TaskError
    from ferry.experimental import collective
    from ferry.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    import ray.exceptions
    import ray.experimental.collective
    import ray.util.scheduling_strategies
    assert ray.get is ferry.get and ray.remote is ferry.remote and ray.method is ferry.method
    assert ray.ObjectRef is ferry.ObjectRef
    assert ray.exceptions.RayActorError is ActorDiedError
    assert ray.exceptions.ActorDiedError is ActorDiedError
    assert ray.exceptions.RayTaskError is TaskError
    assert ray.exceptions.RayError is FerryError
    assert ray.experimental.collective.create_collective_group is collective.create_collective_group
    assert (ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy
            is NodeAffinitySchedulingStrategy)
    assert ray.util is sys.modules["ray.util"]  # the alias, not ferry.util
    assert {"get", "remote", "exceptions"} <= set(dir(ray))


def test_missing_names_raise_an_attribute_error_naming_them(ray):
    with pytest.raises(ray_compat.RayFeatureNotSupportedError, match=r"^ray\.get_runtime_context "):
        ray.get_runtime_context
    assert not hasattr(ray, "get_runtime_context")
    assert getattr(ray.util, "ActorPool", None) is None
    with pytest.raises(AttributeError, match="ray.util.ActorPool is not part"):
        ray.util.ActorPool
    # ferry's modules outside Ray's API are not reachable through `ray`.
    with pytest.raises(AttributeError, match="ray._private is not part"):
        ray._private


def test_an_alias_pickles_as_the_ferry_module(ray):
    import ferry

    def uses_ray():
        return ray.get

    assert pickle.loads(pickle.dumps(ray)) is ferry
    assert cloudpickle.loads(cloudpickle.dumps(uses_ray))() is ferry.get


def test_install_is_idempotent_and_uninstall_removes_the_aliases(ray):
    ray_compat.install()
    assert sys.meta_path.count(ray_compat._finder) == 1
    ray_compat.uninstall()
    assert "ray" not in sys.modules
    ray_compat.install()  # the fixture's uninstall checks the rest


def test_install_refuses_when_ray_itself_is_imported(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", types.ModuleType("ray"))
    with pytest.raises(ImportError, match="Ray itself .* is already imported"):
        ray_compat.install()
    assert not ray_compat.installed()
