#include "ferry/rpc/dispatcher.h"

#include <string>

#include "ferry/common/logging.h"

namespace ferry::rpc {

void Dispatcher::Register(uint16_t method, Handler handler) {
  FERRY_CHECK(!frozen()) << "Dispatcher::Register(" << method << ") after Freeze()";
  if (handlers_.size() <= method) handlers_.resize(size_t{method} + 1);
  handlers_[method] = std::move(handler);
}

void Dispatcher::Dispatch(const std::shared_ptr<Channel>& channel, uint16_t method,
                          std::string_view payload, Responder responder) const {
  if (method < handlers_.size() && handlers_[method]) {
    handlers_[method](channel, payload, std::move(responder));
    return;
  }
  if (responder.pending()) {
    responder.ReplyError(Status::Unimplemented("no handler for method " + std::to_string(method)));
  } else {
    FERRY_LOG(WARNING) << "dropping one-way message for unknown method " << method;
  }
}

}  // namespace ferry::rpc
