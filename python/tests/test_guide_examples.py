"""The guide's Gloo and mutability examples (examples/guide/*.py) and the
quickstart run as real drivers, and print what the guide says they print."""
import os
import re
import subprocess
import sys

import pytest

from conftest import PYTHON_DIR

REPO = os.path.dirname(PYTHON_DIR)
GUIDE = os.path.join(REPO, "examples", "guide")
TIMEOUT_S = 120
# What print(torch_scalar) looks like: "tensor(929.2890)".
TENSOR_PRINT = re.compile(r"tensor\(\s*\[?\s*-?\d")


def _run(path):
    proc = subprocess.run([sys.executable, path], capture_output=True, text=True, timeout=TIMEOUT_S,
                          stdin=subprocess.DEVNULL, cwd=REPO)
    return proc, f"rc={proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"


def test_every_guide_example_has_a_test():
    tested = {"gloo_basic.py", "gloo_dict.py", "gloo_pass_back.py", "mutability_bug.py",
              "wait_tensor_freed.py", "mutability_warning.py", "nixl.py"}
    assert set(f for f in os.listdir(GUIDE) if f.endswith(".py")) == tested


@pytest.mark.parametrize("name", ["gloo_basic.py", "gloo_dict.py"])
def test_transfer_examples_print_a_tensor(name):
    proc, info = _run(os.path.join(GUIDE, name))
    assert proc.returncode == 0, info
    assert TENSOR_PRINT.search(proc.stdout), info


def test_nixl_example_transfers_gets_and_sums_put_refs():
    proc, info = _run(os.path.join(GUIDE, "nixl.py"))
    assert proc.returncode == 0, info
    lines = proc.stdout.splitlines()
    assert TENSOR_PRINT.search(lines[0]), info  # receiver.sum of the nixl ref
    assert "tensor([[" in proc.stdout, info     # ray.get(tensor) pulled in the driver
    assert lines[-1] == "sums match", info      # consume_with_nixl over put refs


def test_pass_back_and_get_example():
    proc, info = _run(os.path.join(GUIDE, "gloo_pass_back.py"))
    assert proc.returncode == 0, info
    # The last print is ray.get(tensor, _tensor_transport="object_store"): a 1000x1000 tensor.
    assert "tensor([[" in proc.stdout, info


def test_mutability_bug_example_shows_the_bug():
    proc, info = _run(os.path.join(GUIDE, "mutability_bug.py"))
    assert proc.returncode == 0, info
    assert "AssertionError: sender and receiver returned different sums." in proc.stdout, info


def test_wait_tensor_freed_example_sums_match():
    proc, info = _run(os.path.join(GUIDE, "wait_tensor_freed.py"))
    assert proc.returncode == 0, info
    assert "sums match" in proc.stdout, info
    assert "different sums" not in proc.stdout, info


def test_mutability_warning_example_warns():
    proc, info = _run(os.path.join(GUIDE, "mutability_warning.py"))
    assert proc.returncode == 0, info
    assert "UserWarning" in proc.stderr and "mutable" in proc.stderr, info


def test_quickstart_runs():
    proc, info = _run(os.path.join(REPO, "examples", "quickstart.py"))
    assert proc.returncode == 0, info
