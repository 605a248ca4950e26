"""The examples of the API beyond the guide (examples/ray_api/*.py), each
written with `import ferry as ray`, run as real drivers and print what they
should."""
import os
import subprocess
import sys

import pytest

from conftest import PYTHON_DIR

EXAMPLES = os.path.join(os.path.dirname(PYTHON_DIR), "examples", "ray_api")
TIMEOUT_S = 180

EXPECTED = {
    "asyncio_actors.py": ["consumer total: 30", "driver gather: ([0, 1, 4, 9, 16], 1, 4)",
                          "rdt transport: NIXL sum: 1000.0"],
    "remote_functions.py": ["squares: [0, 1, 4, 9, 16]", "divmod: [3, 2]", "chained: 81",
                            "nested: 14", "2 cpus: 49", "retry: recovered"],
    "rdt_api.py": ["transport: NIXL", "total via get_actor: 4.0", "distinct names: True",
                   "groups with a: 2", "gloo total: 8.0", "left: []",
                   "error: Invalid tensor transport: 'pigeon'"],
}


def test_every_example_has_expectations():
    assert {f for f in os.listdir(EXAMPLES) if f.endswith(".py")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_prints_what_it_should(name):
    path = os.path.join(EXAMPLES, name)
    with open(path) as f:
        assert "import ferry as ray" in f.read()
    proc = subprocess.run([sys.executable, path], capture_output=True, text=True,
                          timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
    info = f"rc={proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, info
    for line in EXPECTED[name]:
        assert line in proc.stdout, info
