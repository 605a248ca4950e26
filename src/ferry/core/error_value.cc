#include "ferry/core/error_value.h"

namespace ferry::core {

proto::StatusProto ToProto(const Status& status) {
  proto::StatusProto p;
  p.set_code(static_cast<int>(status.code()));
  p.set_message(status.message());
  return p;
}

Status FromProto(const proto::StatusProto& status) {
  return Status(static_cast<StatusCode>(status.code()), status.message());
}

proto::ObjectValueProto MakeErrorValue(const Status& status, std::string_view format,
                                       std::string_view data) {
  proto::ObjectValueProto v;
  v.set_format(std::string(format));
  v.set_data_size(data.size());
  v.set_inline_data(std::string(data));
  *v.mutable_error() = ToProto(status);
  return v;
}

Status ValueStatus(const proto::ObjectValueProto& value) {
  if (!value.has_error() || value.error().code() == 0) return Status::Ok();
  return FromProto(value.error());
}

}  // namespace ferry::core
