#include "ferry/core/object_resolver.h"

#include "ferry/common/config.h"
#include "ferry/common/host_id.h"
#include "ferry/core/error_value.h"
#include "ferry/object/inline_value.h"

namespace ferry::core {
namespace {

ValuePtr ErrorPtr(const Status& s) {
  return std::make_shared<const proto::ObjectValueProto>(MakeErrorValue(s));
}

// Answers a GET_OBJECT from another host with the value's bytes inline.
void ReplyInlined(rpc::Responder& responder, const proto::ObjectValueProto& value) {
  auto inlined = object::InlineForAnotherHost(value);
  if (!inlined.ok()) {
    responder.ReplyError(inlined.status());
    return;
  }
  responder.Reply(*inlined);
}

}  // namespace

void ObjectResolver::Resolve(const proto::ObjectRefProto& ref, std::function<void(ValuePtr)> done) {
  auto id = ObjectId::FromBinary(ref.object_id());
  if (!id.ok()) {
    done(ErrorPtr(id.status()));
    return;
  }
  if (ref.owner_worker_id() != self_.Binary()) {
    FetchFromOwner(ref, std::move(done));
    return;
  }
  if (!refs_->Has(*id) && !store_->GetIfReady(*id)) {
    done(ErrorPtr(Status::DataLoss("object " + id->Hex() +
                                   " was already freed: no ObjectRef to it was alive")));
    return;
  }
  store_->Subscribe(*id, [done = std::move(done)](ValuePtr v) { done(std::move(v)); });
}

void ObjectResolver::FetchFromOwner(const proto::ObjectRefProto& ref,
                                    std::function<void(ValuePtr)> done) {
  auto job = [this, ref, done = std::move(done)]() mutable {
    auto channel = channels_->Get(ref.owner_address(),
                                  Deadline::After(Config::Get().rpc_connect_timeout));
    if (!channel.ok()) {
      done(ErrorPtr(
          Status::DataLoss("the owner of object " +
                           HexEncode(reinterpret_cast<const uint8_t*>(ref.object_id().data()),
                                     ref.object_id().size()) +
                           " is unreachable (" + channel.status().message() + ")")));
      return;
    }
    proto::GetObjectRequest req;
    req.set_object_id(ref.object_id());
    req.set_timeout_ms(-1);
    req.set_requester_host(HostId());
    (*channel)->Call(
        proto::GET_OBJECT, req, [done = std::move(done)](Status status, std::string_view payload) {
          if (!status.ok()) {
            if (status.code() == StatusCode::kUnavailable) {
              status = Status::DataLoss("the owner of the object died: " + status.message());
            }
            done(ErrorPtr(status));
            return;
          }
          auto value = std::make_shared<proto::ObjectValueProto>();
          if (!value->ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
            done(ErrorPtr(Status::Internal("malformed object value from its owner")));
            return;
          }
          done(std::move(value));
        });
  };
  if (!background_->Post(std::move(job))) {
    // Shutting down: nothing will answer.
  }
}

void ObjectResolver::Serve(std::string_view payload, rpc::Responder responder) {
  proto::GetObjectRequest req;
  if (!req.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    responder.ReplyError(Status::InvalidArgument("malformed GetObjectRequest"));
    return;
  }
  auto id = ObjectId::FromBinary(req.object_id());
  if (!id.ok()) {
    responder.ReplyError(id.status());
    return;
  }
  if (!refs_->Has(*id) && !store_->GetIfReady(*id)) {
    responder.ReplyError(Status::DataLoss("object " + id->Hex() + " was freed by its owner"));
    return;
  }
  auto shared = std::make_shared<rpc::Responder>(std::move(responder));
  if (req.requester_host().empty() || req.requester_host() == HostId()) {
    store_->Subscribe(*id, [shared](ValuePtr v) { shared->Reply(*v); });
    return;
  }
  // Another host cannot map this host's segments: send the bytes, copied
  // off the io thread.
  store_->Subscribe(*id, [this, shared](ValuePtr v) {
    if (!v->has_shm()) {
      shared->Reply(*v);
      return;
    }
    if (!background_->Post([shared, v] { ReplyInlined(*shared, *v); })) {
      shared->ReplyError(Status::Unavailable("ferry is shutting down"));
    }
  });
}

}  // namespace ferry::core
