// ferry::RegisterTensorTransport: a user's ferry::OneSidedTransport behind
// the core's transport::OneSidedTransport interface.
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
      if (e.descriptors.size() != buffers.size()) {
        return Status::Internal("tensor transport '" + name_ + "' exported " +
                                std::to_string(buffers.size()) + " buffers with " +
                                std::to_string(e.descriptors.size()) + " descriptors");
      }
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

}  // namespace

void RegisterTensorTransport(const std::string& name, const std::vector<std::string>& devices,
                             OneSidedTransportFactory make) {
  if (!make) internal::ThrowStatus(Status::InvalidArgument("RegisterTensorTransport: no factory"));
  auto factory = [name, make = std::move(make)]()
      -> StatusOr<std::unique_ptr<transport::OneSidedTransport>> {
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
