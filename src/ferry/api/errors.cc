// The one table from Status codes to the C++ API's exceptions.
#include "ferry/errors.h"

namespace ferry::internal {

void ThrowStatus(const Status& status) {
  switch (status.code()) {
    case StatusCode::kTaskError: throw TaskError(status);
    case StatusCode::kUnavailable: throw ActorDiedError(status);
    case StatusCode::kDeadlineExceeded: throw GetTimeoutError(status);
    case StatusCode::kAborted: throw TransportError(status);
    case StatusCode::kDataLoss: throw ObjectLostError(status);
    case StatusCode::kFailedPrecondition: throw CollectiveGroupError(status);
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound:
    case StatusCode::kAlreadyExists: throw InvalidArgumentError(status);
    case StatusCode::kUnimplemented: throw UnimplementedError(status);
    case StatusCode::kOk: throw Error(Status::Internal("ThrowStatus called with an OK status"));
    default: throw Error(status);
  }
}

}  // namespace ferry::internal
