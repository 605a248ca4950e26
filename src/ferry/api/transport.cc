// ferry::RegisterTensorTransport and RegisterTwoSidedTensorTransport: a
// user's transports behind the core's transport interfaces.
#include "ferry/transport.h"

#include <exception>

#include "ferry/errors.h"
#include "ferry/transport/registry.h"

namespace ferry {
namespace {

std::vector<TransportBuffer> Public(const std::vector<transport::BufferView>& buffers) {
  std::vector<TransportBuffer> out;
  out.reserve(buffers.size());
  for (const transport::BufferView& b : buffers) out.push_back({b.data, b.nbytes});
  return out;
}

Status Thrown(const std::string& name, const char* method, const std::exception& e) {
  return Status::Aborted("tensor transport '" + name + "': " + method + " threw: " + e.what());
}

// The core's view of a user's transport: forwards every call, turning what
// the user's code throws into a Status.
class UserOneSidedTransport final : public transport::OneSidedTransport {
 public:
  UserOneSidedTransport(std::string name, std::unique_ptr<ferry::OneSidedTransport> user)
      : name_(std::move(name)), user_(std::move(user)) {}

  const std::string& name() const override { return name_; }

  StatusOr<transport::ExportedBuffers> Export(
      const std::vector<transport::BufferView>& buffers) override {
    try {
      FERRY_ASSIGN_OR_RETURN(ExportedBuffers e, user_->Export(Public(buffers)));
      return transport::ExportedBuffers{std::move(e.endpoint), std::move(e.descriptors)};
    } catch (const std::exception& e) {
      return Thrown(name_, "Export", e);
    }
  }

  void Release(const std::vector<transport::BufferView>& buffers) override {
    try {
      user_->Release(Public(buffers));
    } catch (const std::exception&) {
      // Nothing to report to: the object is gone either way.
    }
  }

  Status Pull(std::span<const transport::PullItem> items, Deadline deadline) override {
    std::vector<PullRequest> requests;
    requests.reserve(items.size());
    for (const transport::PullItem& i : items) {
      requests.push_back({i.endpoint, i.descriptor, {i.dst.data, i.dst.nbytes}});
    }
    try {
      return user_->Pull(requests, deadline.time_point());
    } catch (const std::exception& e) {
      return Thrown(name_, "Pull", e);
    }
  }

 private:
  const std::string name_;
  const std::unique_ptr<ferry::OneSidedTransport> user_;
};

// The core's view of a user's two-sided transport. Destroying it aborts the
// user's transport, then destroys it (which waits for its callbacks).
class UserTwoSidedTransport final : public transport::TwoSidedTransport {
 public:
  UserTwoSidedTransport(std::string name, int rank, int size,
                        std::unique_ptr<ferry::TwoSidedTransport> user)
      : name_(std::move(name)), rank_(rank), size_(size), user_(std::move(user)) {}
  ~UserTwoSidedTransport() override {
    Abort(Status::Cancelled("the collective group was destroyed"));
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void Send(int peer, uint64_t tag, std::vector<transport::BufferView> buffers,
            transport::TransferCallback done) override {
    Post("Send", done, [&] { user_->Send(peer, tag, Public(buffers), done); });
  }

  void Recv(int peer, uint64_t tag, std::vector<transport::BufferView> buffers,
            transport::TransferCallback done) override {
    Post("Recv", done, [&] { user_->Recv(peer, tag, Public(buffers), done); });
  }

  void Abort(Status reason) override {
    try {
      user_->Abort(std::move(reason));
    } catch (const std::exception&) {
      // Aborting is best effort; the transport is not used again.
    }
  }

 private:
  // Runs `post`; a throw before the transport took `done` fails the transfer.
  template <typename Fn>
  void Post(const char* method, const transport::TransferCallback& done, Fn&& post) {
    try {
      post();
    } catch (const std::exception& e) {
      done(Thrown(name_, method, e));
    }
  }

  const std::string name_;
  const int rank_;
  const int size_;
  const std::unique_ptr<ferry::TwoSidedTransport> user_;
};

GroupMember MemberOf(transport::RendezvousStore& store, const transport::TransportOptions& o) {
  GroupMember m;
  m.rank = o.rank;
  m.size = o.size;
  m.hostname = o.hostname;
  m.join_deadline = Deadline::After(o.connect_timeout).time_point();
  m.transfer_timeout = o.transfer_timeout;
  const std::string prefix = o.prefix + "/user/";
  m.publish = [&store, prefix](const std::string& key, const std::string& value) {
    return store.Set(prefix + key, value);
  };
  m.lookup = [&store, prefix](const std::string& key, std::chrono::steady_clock::time_point d) {
    const bool never = d == std::chrono::steady_clock::time_point::max();
    return store.Get(prefix + key, never ? Deadline::Never() : Deadline::After(d - Clock::now()));
  };
  return m;
}

}  // namespace

void RegisterTwoSidedTensorTransport(const std::string& name,
                                     const std::vector<std::string>& devices,
                                     TwoSidedTransportFactory make) {
  if (!make) {
    internal::ThrowStatus(Status::InvalidArgument("RegisterTwoSidedTensorTransport: no factory"));
  }
  auto factory = [name, make = std::move(make)](transport::RendezvousStore& store,
                                                const transport::TransportOptions& options)
      -> StatusOr<std::unique_ptr<transport::TwoSidedTransport>> {
    std::unique_ptr<ferry::TwoSidedTransport> user;
    try {
      user = make(MemberOf(store, options));
    } catch (const std::exception& e) {
      return Thrown(name, "its factory", e);
    }
    if (user == nullptr) {
      return Status::Internal("tensor transport '" + name + "': its factory returned null");
    }
    return std::unique_ptr<transport::TwoSidedTransport>(
        new UserTwoSidedTransport(name, options.rank, options.size, std::move(user)));
  };
  internal::ThrowIfError(transport::RegisterTwoSidedTransport(name, devices, std::move(factory)));
}

void RegisterTensorTransport(const std::string& name, const std::vector<std::string>& devices,
                             OneSidedTransportFactory make) {
  if (!make) internal::ThrowStatus(Status::InvalidArgument("RegisterTensorTransport: no factory"));
  auto factory =
      [name, make = std::move(make)]() -> StatusOr<std::unique_ptr<transport::OneSidedTransport>> {
    std::unique_ptr<ferry::OneSidedTransport> user;
    try {
      user = make();
    } catch (const std::exception& e) {
      return Thrown(name, "its factory", e);
    }
    if (user == nullptr) {
      return Status::Internal("tensor transport '" + name + "': its factory returned null");
    }
    return std::unique_ptr<transport::OneSidedTransport>(
        new UserOneSidedTransport(name, std::move(user)));
  };
  internal::ThrowIfError(transport::RegisterOneSidedTransport(name, devices, std::move(factory)));
}

}  // namespace ferry
