// ObjectRef: a future for a value — the object id plus its owner's address.
//
// A plain value type (copyable, thread-safe to read). Whether holding one
// keeps the object alive is decided by who counts it: the language bindings
// pair each live handle with CoreWorker::AddLocalRef/RemoveLocalRef.
//
//   ObjectRef r = refs[0];
//   bool mine = r.owner_id == core.worker_id();
//   proto::ObjectRefProto p = r.ToProto();
#pragma once

#include <string>

#include "ferry/common/id.h"
#include "ferry/proto/ferry.pb.h"

namespace ferry::core {

struct ObjectRef {
  ObjectId id;
  std::string owner_address;
  WorkerId owner_id;

  proto::ObjectRefProto ToProto() const {
    proto::ObjectRefProto p;
    p.set_object_id(id.Binary());
    p.set_owner_address(owner_address);
    p.set_owner_worker_id(owner_id.Binary());
    return p;
  }
  static StatusOr<ObjectRef> FromProto(const proto::ObjectRefProto& p) {
    ObjectRef r;
    FERRY_ASSIGN_OR_RETURN(r.id, ObjectId::FromBinary(p.object_id()));
    FERRY_ASSIGN_OR_RETURN(r.owner_id, WorkerId::FromBinary(p.owner_worker_id()));
    r.owner_address = p.owner_address();
    return r;
  }
};

}  // namespace ferry::core
