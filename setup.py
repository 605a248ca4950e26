"""The build of ferry's Python package (pyproject.toml holds its metadata).

The pure-Python files come from python/ferry; the extension ferry._core is
built by CMake (python/src/CMakeLists.txt) and copied into the wheel.

FERRY_CMAKE_BUILD_DIR=<dir> reuses that configured CMake build directory
(relative paths are taken from this checkout, e.g. `build` after `make
build`): only `cmake --build <dir> --target _core` runs, which does nothing
when it is up to date. Without it, a Release build directory is configured
under setuptools' build_temp and _core is built from scratch (many minutes
on a small machine).
"""
import os
import re
import shutil
import subprocess
import sys
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

ROOT = os.path.dirname(os.path.abspath(__file__))


def _version():
    """The version of project(ferry VERSION ...) in CMakeLists.txt."""
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        match = re.search(r"project\(\s*ferry\s+VERSION\s+([0-9][0-9.]*)", f.read())
    if not match:
        raise RuntimeError("CMakeLists.txt has no project(ferry VERSION ...)")
    return match.group(1)


def _reused_build_dir():
    build_dir = os.environ.get("FERRY_CMAKE_BUILD_DIR")
    if not build_dir:
        return None
    build_dir = os.path.join(ROOT, build_dir)  # an absolute path stays as it is
    if not os.path.isfile(os.path.join(build_dir, "CMakeCache.txt")):
        raise RuntimeError(f"FERRY_CMAKE_BUILD_DIR={build_dir} is not a configured CMake build "
                           f"directory (no CMakeCache.txt)")
    return build_dir


class CleanBuildPy(build_py):
    """Starts the package's staging folder empty: setuptools would otherwise
    keep what an earlier build left there (a module since deleted, an older
    _core) and put it in the wheel. Runs before build_ext."""

    def run(self):
        for package in self.packages or []:
            staged = os.path.join(self.build_lib, *package.split("."))
            if os.path.isdir(staged):
                shutil.rmtree(staged)
        super().run()


class CMakeBuildExt(build_ext):
    """Builds each extension as the CMake target of its last name component."""

    def build_extension(self, ext):
        build_dir = _reused_build_dir()
        if build_dir is None:
            build_dir = os.path.join(os.path.abspath(self.build_temp), "cmake")
            configure = ["cmake", "-S", ROOT, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release",
                         f"-DPython_EXECUTABLE={sys.executable}"]
            if shutil.which("ninja"):
                configure += ["-G", "Ninja"]
            subprocess.check_call(configure)
        target = ext.name.rsplit(".", 1)[-1]
        subprocess.check_call(["cmake", "--build", build_dir, "--target", target])

        # python/src/CMakeLists.txt writes where the module was built.
        with open(os.path.join(build_dir, "python", "core_module_path.txt")) as f:
            built = f.read().strip()
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        if not built.endswith(suffix):
            raise RuntimeError(f"{built} was built for another Python than {sys.executable} "
                               f"(which loads *{suffix}); configure the build directory with "
                               f"-DPython_EXECUTABLE={sys.executable}")
        dest = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(built, dest)


# setuptools' intermediate files (and ferry.egg-info): beside the reused CMake
# build, or in build-python/ — never in build/, the CMake build directory of
# `make build`, nor in python/.
_reused = _reused_build_dir()
_build_base = os.path.join(_reused, "setuptools") if _reused else os.path.join(ROOT, "build-python")
os.makedirs(_build_base, exist_ok=True)

setup(
    version=_version(),
    ext_modules=[Extension("ferry._core", sources=[])],
    cmdclass={"build_py": CleanBuildPy, "build_ext": CMakeBuildExt},
    options={"build": {"build_base": _build_base}, "egg_info": {"egg_base": _build_base}},
)
