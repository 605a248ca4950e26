// ObjectResolver: finds the value behind an ObjectRef, for this process
// and for others.
//
// Resolve(): the value of a ref this process owns comes from its memory
// store when it is (or becomes) ready; the value of a borrowed ref is asked
// of its owner (GET_OBJECT, which waits until the value exists). Serve():
// the owner's side of GET_OBJECT. A value in this host's shared memory is
// sent inline to a requester on another host.
//
// Thread contract: thread-safe. `done` fires exactly once, on any thread
// (the io thread for most completions), never under a lock of this class.
#pragma once

#include <functional>
#include <memory>
#include <string_view>

#include "ferry/common/id.h"
#include "ferry/common/work_queue.h"
#include "ferry/core/argument_resolver.h"
#include "ferry/object/memory_store.h"
#include "ferry/object/reference_counter.h"
#include "ferry/rpc/channel_cache.h"
#include "ferry/rpc/responder.h"

namespace ferry::core {

class ObjectResolver {
 public:
  // `background` runs the connects to owners (which may block).
  ObjectResolver(WorkerId self, object::ReferenceCounter* refs, object::MemoryStore* store,
                 rpc::ChannelCache* channels, WorkQueue* background)
      : self_(std::move(self)),
        refs_(refs),
        store_(store),
        channels_(channels),
        background_(background) {}

  void Resolve(const proto::ObjectRefProto& ref, std::function<void(ValuePtr)> done);
  // Answers a GET_OBJECT request (io thread) once the value is ready.
  void Serve(std::string_view payload, rpc::Responder responder);

 private:
  void FetchFromOwner(const proto::ObjectRefProto& ref, std::function<void(ValuePtr)> done);

  const WorkerId self_;
  object::ReferenceCounter* const refs_;
  object::MemoryStore* const store_;
  rpc::ChannelCache* const channels_;
  WorkQueue* const background_;
};

}  // namespace ferry::core
