// ferry._core.HeadClient: a session's or a cluster's tables (nodes, actors,
// processes) and what each process holds, for the `ferry` command
// (ferry/scripts/state.py). The work is in src/ferry/cluster/head_client.h.
#pragma once

#include <pybind11/pybind11.h>

namespace ferry::python {

void RegisterState(pybind11::module_& m);

}  // namespace ferry::python
