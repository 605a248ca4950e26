#include "ferry/object/inline_value.h"

#include "ferry/object/shm_mapping.h"

namespace ferry::object {

StatusOr<proto::ObjectValueProto> InlineForAnotherHost(const proto::ObjectValueProto& value) {
  if (!value.has_shm()) return value;
  FERRY_ASSIGN_OR_RETURN(std::shared_ptr<ShmMapping> mapping, ShmMapping::Open(value.shm()));
  proto::ObjectValueProto out = value;
  out.clear_shm();
  out.set_inline_data(reinterpret_cast<const char*>(mapping->data()), mapping->size());
  return out;
}

}  // namespace ferry::object
