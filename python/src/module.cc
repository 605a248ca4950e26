// ferry._core: the C++ runtime as a Python extension. Only type conversion,
// error mapping and GIL handling live here (docs/architecture.md, "Layers").
#include <pybind11/pybind11.h>

#include "ferry/config.h"
#include "py_buffers.h"
#include "py_cluster.h"
#include "py_object_ref.h"
#include "py_runtime.h"
#include "py_state.h"
#include "py_tables.h"
#include "py_transport.h"

#if FERRY_HAVE_TORCH_SHM
#include "ferry/transport/shm/torch_shm_allocator.h"
#endif

PYBIND11_MODULE(_core, m) {
  m.doc() = "ferry's C++ runtime";
  ferry::python::RegisterBuffers(m);
  ferry::python::RegisterObjectRef(m);
  ferry::python::RegisterRuntime(m);
  ferry::python::RegisterTables(m);
  ferry::python::RegisterCustomTransports(m);
  ferry::python::RegisterCluster(m);
  ferry::python::RegisterState(m);
  // Makes torch's large CPU tensors live in ferry's shared-memory arena (the
  // shm transport pulls them with one copy). False if unavailable.
  m.def("install_shm_allocator", [] {
#if FERRY_HAVE_TORCH_SHM
    return ferry::transport::InstallTorchShmAllocator();
#else
    return false;
#endif
  });
}
