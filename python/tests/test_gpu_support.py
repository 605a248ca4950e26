"""What a process can do with GPUs: ferry loads the CUDA runtime and NCCL at
run time, so one build runs with and without them and says why a GPU is not
usable. On a machine with the toolkit but no GPU (the development machines)
the runtime loads and reports no device."""
import os
import subprocess
import sys

import ferry.experimental as fx


def test_gpu_info_says_what_loads_and_why_no_gpu_is_usable():
    info = fx.gpu_info()
    assert set(info) == {"cuda", "devices", "cuda_library", "driver_version", "runtime_version",
                         "nccl", "nccl_library", "nccl_version", "reason"}
    assert fx.gpu_available() is info["cuda"]
    if info["cuda"]:
        assert info["devices"] > 0 and info["driver_version"] > 0
    else:
        assert info["devices"] == 0
        assert info["reason"], "no GPU must come with a reason"
    if info["cuda_library"]:
        assert "libcudart" in info["cuda_library"] and info["runtime_version"] >= 11000
    if info["nccl"]:
        assert "nccl" in info["nccl_library"] and info["nccl_version"] >= 20000


def test_a_runtime_that_cannot_load_is_named_in_the_reason():
    code = ("import ferry.experimental as fx; i = fx.gpu_info(); "
            "print(fx.gpu_available(), i['cuda_library'] == '', i['reason'])")
    env = dict(os.environ, FERRY_CUDART_LIBRARY="/nonexistent/libcudart.so.99")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    available, no_library, reason = out.stdout.strip().split(" ", 2)
    assert (available, no_library) == ("False", "True")
    assert reason.startswith("the CUDA runtime is not available: cannot load "
                             "/nonexistent/libcudart.so.99"), reason
