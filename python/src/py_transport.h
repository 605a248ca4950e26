// A tensor transport written in Python (ferry.experimental.TensorTransport)
// behind the core's one-sided transport interface
// (ferry/transport/one_sided_transport.h), registered by name in the
// transport table so that `tensor_transport="name"` uses it like a built-in
// transport.
//
// THREAD CONTRACT: the adaptor is called from ferry's threads (the transfer
// thread for argument pulls and releases, callers of `get`, executors for
// exports); each call takes the GIL for the user's method, never on the io
// thread (TensorHolder posts a user's transport's releases to its transfer
// thread). What the user's method raises becomes the call's Status:
// TimeoutError is DeadlineExceeded, anything else Aborted, so consumers see
// the same TransportError and GetTimeoutError as with built-in transports.
#pragma once

#include <pybind11/pybind11.h>

namespace ferry::python {

// _core.register_one_sided_transport(name, devices, factory).
void RegisterCustomTransports(pybind11::module_& m);

}  // namespace ferry::python
