// Typed exceptions of the C++ user API.
//
// Inside the library every fallible call returns a ferry::Status; at this
// edge a non-OK Status becomes one of the exceptions below, chosen from its
// code by ONE table (src/ferry/api/errors.cc, ThrowStatus). Every exception
// derives from ferry::Error (a std::runtime_error) and keeps the Status.
//
// Thread contract: plain value types.
//
//   try {
//     double s = *ferry::Get(ref, std::chrono::seconds(5));
//   } catch (const ferry::TaskError& e) {       // the method threw; e.what() has its message
//   } catch (const ferry::GetTimeoutError& e) { // not ready within 5 s
//   }
#pragma once

#include <stdexcept>
#include <string>

#include "ferry/status.h"

namespace ferry {

class Error : public std::runtime_error {
 public:
  explicit Error(Status status)
      : std::runtime_error(status.message()), status_(std::move(status)) {}
  const Status& status() const { return status_; }

 private:
  Status status_;
};

// The remote method (or constructor) threw; what() is "<method>: <type>: <message>".
class TaskError : public Error {
  using Error::Error;
};
// The actor is gone (killed, crashed, or its constructor failed).
class ActorDiedError : public Error {
  using Error::Error;
};
// A Get (or Wait, WaitTensorFreed) deadline passed.
class GetTimeoutError : public Error {
  using Error::Error;
};
// Moving tensors between processes failed (a system error: the group is destroyed).
class TransportError : public Error {
  using Error::Error;
};
// An object's value is lost (its owner or producer is gone, or it was freed).
class ObjectLostError : public Error {
  using Error::Error;
};
// A collective group is missing or broken.
class CollectiveGroupError : public Error {
  using Error::Error;
};
// Misuse: a bad argument, an unknown name, a Get that needs another transport.
class InvalidArgumentError : public Error {
  using Error::Error;
};
// A transport or feature this build lacks.
class UnimplementedError : public Error {
  using Error::Error;
};
// FERRY_REMOTE problems: a function registered twice, or used without registration.
class RegistrationError : public Error {
  using Error::Error;
};

namespace internal {
// The one Status -> exception table. `status` must not be OK.
[[noreturn]] void ThrowStatus(const Status& status);
inline void ThrowIfError(const Status& status) {
  if (!status.ok()) ThrowStatus(status);
}
template <typename T>
T ValueOrThrow(StatusOr<T> v) {
  if (!v.ok()) ThrowStatus(v.status());
  return std::move(v).value();
}
}  // namespace internal

}  // namespace ferry
