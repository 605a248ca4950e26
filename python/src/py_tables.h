// The runtime's fixed tables as Python sees them: the transport table
// (ferry/transport/transport_table.h) and the status codes by name, so the
// Python package derives its name lists, checks and exception mapping from
// them instead of keeping copies. Call with the GIL held.
#pragma once

#include <pybind11/pybind11.h>

namespace ferry::python {

// _core.transports(), _core.status_codes(), _core.check_tensor_device().
void RegisterTables(pybind11::module_& m);

}  // namespace ferry::python
