"""The install_pip test: `pip install .` of this checkout into a fresh virtual
environment, then a driver script run where only that ferry is importable
(no PYTHONPATH, a directory without a ferry package).

The environment is made with --system-site-packages (Debian's cloudpickle,
numpy and torch stay visible) and pip runs offline (--no-index,
--no-build-isolation: Debian's setuptools and wheel build it), reusing the
CMake build directory given with --build-dir (FERRY_CMAKE_BUILD_DIR), so no
part of ferry is compiled again. The script starts an actor, calls it and
checks that both the driver and the worker imported the installed ferry, not
the checkout.

    python3 pip_install_test.py --source-dir . --build-dir build --work-dir /tmp/x
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import textwrap

DRIVER = textwrap.dedent("""\
    import os
    import sys

    import ferry

    prefix = os.path.realpath(sys.prefix)
    assert os.path.realpath(ferry.__file__).startswith(prefix + os.sep), ferry.__file__


    @ferry.remote
    class Adder:
        def __init__(self, base):
            self.base = base

        def add(self, x):
            return self.base + x

        def ferry_file(self):
            import ferry
            return os.path.realpath(ferry.__file__)


    a = Adder.remote(40)
    assert ferry.get(a.add.remote(2), timeout=60) == 42
    worker_ferry = ferry.get(a.ferry_file.remote(), timeout=60)
    assert worker_ferry.startswith(prefix + os.sep), worker_ferry
    ferry.shutdown()
    print("pip-installed ferry ok:", worker_ferry)
""")

SKIP = 77  # ctest's SKIP_RETURN_CODE for this test


def cmake_cache(build_dir, name):
    with open(os.path.join(build_dir, "CMakeCache.txt")) as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("=")
            if key.split(":")[0] == name:
                return value
    return ""


def run(what, cmd, **kwargs):
    """Runs cmd, its output captured; exits the test on failure or after 240 s
    (killing cmd's whole process group: pip's cmake and ninja, the driver's
    workers)."""
    print(f"== {what}: {' '.join(cmd)}", flush=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, **kwargs)
    try:
        out, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        print(out)
        sys.exit(f"pip install test: {what} ran past 240 s")
    if proc.returncode != 0:
        print(out)
        sys.exit(f"pip install test: {what} failed ({proc.returncode})")
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--source-dir", required=True)
    parser.add_argument("--build-dir", required=True)
    parser.add_argument("--work-dir", required=True)
    parser.add_argument("--cxx", default="c++", help="the compiler of the build (finds libasan)")
    args = parser.parse_args()
    source_dir, build_dir, work_dir = (os.path.abspath(p) for p in
                                       (args.source_dir, args.build_dir, args.work_dir))

    # Neither pip nor the driver may see the checkout's python/ on their path.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    driver_env = dict(env)
    sanitize = cmake_cache(build_dir, "FERRY_SANITIZE")
    if sanitize == "thread":
        print("pip install test: skipped: a TSan _core only loads into a TSan Python")
        return SKIP
    if sanitize == "address":
        # The sanitized _core loads with the ASan runtime preloaded (as in
        # `make test-asan`); CPython's heap at exit is not a leak report.
        libs = [subprocess.check_output([args.cxx, f"-print-file-name={lib}"], text=True).strip()
                for lib in ("libasan.so", "libstdc++.so")]
        driver_env["LD_PRELOAD"] = " ".join(libs)
        driver_env["ASAN_OPTIONS"] = "detect_leaks=0:halt_on_error=1"

    shutil.rmtree(work_dir, ignore_errors=True)
    os.makedirs(work_dir)
    venv = os.path.join(work_dir, "venv")
    python = os.path.join(venv, "bin", "python")
    run("make a venv", [sys.executable, "-m", "venv", "--system-site-packages", venv], env=env)
    run("pip install the checkout",
        [python, "-m", "pip", "install", "--no-index", "--no-build-isolation", source_dir],
        env=dict(env, FERRY_CMAKE_BUILD_DIR=build_dir))

    # From a directory where only the installed ferry is importable.
    run_dir = os.path.join(work_dir, "run")
    os.makedirs(run_dir)
    with open(os.path.join(run_dir, "driver.py"), "w") as f:
        f.write(DRIVER)
    out = run("run a driver", [python, "driver.py"], cwd=run_dir, env=driver_env)
    print(out, end="")
    if "pip-installed ferry ok:" not in out:
        sys.exit("pip install test: the driver did not finish")
    return 0


if __name__ == "__main__":
    sys.exit(main())
