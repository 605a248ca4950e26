// ParseRequest: the first step of every handler — parse the payload as the
// method's request, or answer InvalidArgument naming the message type.
//
//   proto::KvGet req;
//   if (!rpc::ParseRequest(payload, &req, responder)) return;
#pragma once

#include <string>
#include <string_view>

#include "ferry/rpc/responder.h"

namespace ferry::rpc {

template <typename Msg>
bool ParseRequest(std::string_view payload, Msg* msg, Responder& responder) {
  if (msg->ParseFromArray(payload.data(), static_cast<int>(payload.size()))) return true;
  responder.ReplyError(Status::InvalidArgument("malformed " + msg->GetTypeName()));
  return false;
}

}  // namespace ferry::rpc
