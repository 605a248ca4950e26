#include "ferry/transport/fake_one_sided_transport.h"

#include <cstring>

namespace ferry::transport {

class FakeOneSidedFabric::Endpoint : public OneSidedTransport {
 public:
  Endpoint(FakeOneSidedFabric& fabric, std::string name, std::string endpoint)
      : fabric_(fabric), name_(std::move(name)), endpoint_(std::move(endpoint)) {}

  const std::string& name() const override { return name_; }
  StatusOr<ExportedBuffers> Export(const std::vector<BufferView>& buffers) override {
    return fabric_.Export(endpoint_, buffers);
  }
  void Release(const std::vector<BufferView>& buffers) override {
    fabric_.Release(endpoint_, buffers);
  }
  Status Pull(std::span<const PullItem> items, Deadline deadline) override {
    return fabric_.Pull(items, deadline);
  }

 private:
  FakeOneSidedFabric& fabric_;
  const std::string name_;
  const std::string endpoint_;
};

std::unique_ptr<OneSidedTransport> FakeOneSidedFabric::Transport(std::string name,
                                                                 std::string endpoint) {
  return std::make_unique<Endpoint>(*this, std::move(name), std::move(endpoint));
}

void FakeOneSidedFabric::Kill(const std::string& endpoint) {
  MutexLock lock(mu_);
  dead_.insert(endpoint);
}

size_t FakeOneSidedFabric::NumExported() {
  MutexLock lock(mu_);
  return buffers_.size();
}

StatusOr<ExportedBuffers> FakeOneSidedFabric::Export(const std::string& endpoint,
                                                     const std::vector<BufferView>& buffers) {
  for (const BufferView& b : buffers) {
    if (b.data == nullptr && b.nbytes > 0) {
      return Status::InvalidArgument("export of a null buffer of " + std::to_string(b.nbytes) +
                                     " bytes");
    }
  }
  MutexLock lock(mu_);
  ExportedBuffers out;
  out.endpoint = endpoint;
  for (const BufferView& b : buffers) {
    std::string descriptor = endpoint + "#" + std::to_string(next_++);
    buffers_[descriptor] = Buffer{endpoint, b};
    out.descriptors.push_back(std::move(descriptor));
  }
  return out;
}

void FakeOneSidedFabric::Release(const std::string& endpoint,
                                 const std::vector<BufferView>& buffers) {
  MutexLock lock(mu_);
  for (const BufferView& b : buffers) {
    for (auto it = buffers_.begin(); it != buffers_.end(); ++it) {
      if (it->second.endpoint == endpoint && it->second.view.data == b.data &&
          it->second.view.nbytes == b.nbytes) {
        buffers_.erase(it);
        break;
      }
    }
  }
}

Status FakeOneSidedFabric::Pull(std::span<const PullItem> items, Deadline deadline) {
  MutexLock lock(mu_);
  // Every item is checked before any byte moves, as the real backends do.
  std::vector<const Buffer*> sources;
  for (const PullItem& item : items) {
    if (dead_.count(std::string(item.endpoint)) != 0) {
      return Status::Unavailable("fake endpoint " + std::string(item.endpoint) + " is dead");
    }
    auto it = buffers_.find(std::string(item.descriptor));
    if (it == buffers_.end() || it->second.endpoint != item.endpoint) {
      return Status::InvalidArgument("unknown descriptor " + std::string(item.descriptor));
    }
    if (it->second.view.nbytes != item.dst.nbytes) {
      return Status::InvalidArgument("pull of " + std::to_string(item.dst.nbytes) +
                                     " bytes from a buffer of " +
                                     std::to_string(it->second.view.nbytes));
    }
    if (item.dst.data == nullptr && item.dst.nbytes > 0) {
      return Status::InvalidArgument("pull into a null destination");
    }
    sources.push_back(&it->second);
  }
  if (deadline.Expired()) return Status::DeadlineExceeded("the pull's deadline passed");
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].dst.nbytes > 0) {
      std::memcpy(items[i].dst.data, sources[i]->view.data, items[i].dst.nbytes);
    }
  }
  return Status::Ok();
}

}  // namespace ferry::transport
