// ferry._core's cluster pieces: the `ferry start` daemon (ferry._core.Node),
// and conversions of the driver's and actors' cluster options from Python.
// Types are converted here; the work is in src/ferry/cluster/.
#pragma once

#include <pybind11/pybind11.h>

#include "ferry/cluster/process_runtime.h"
#include "ferry/proto/ferry.pb.h"

namespace ferry::python {

// {"address", "token", "node_ip", "num_cpus", "num_gpus", "resources"}.
cluster::DriverOptions DriverOptionsFrom(const pybind11::dict& options);
// An actor's "resources" and "scheduling_strategy" options.
void SetPlacementOptions(const pybind11::dict& options, proto::ActorOptions* out);
// Ray's keys: NodeID, Alive, NodeManagerAddress, Resources, plus
// AvailableResources, IsHead, NumActors, DeathCause.
pybind11::dict NodeInfoToDict(const proto::NodeInfo& node);

void RegisterCluster(pybind11::module_& m);

}  // namespace ferry::python
