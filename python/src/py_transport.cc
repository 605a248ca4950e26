#include "py_transport.h"

#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <vector>

#include "ferry/common/thread_annotations.h"
#include "ferry/transport/registry.h"
#include "ferry/transport/waiter_pool.h"
#include "py_errors.h"

namespace py = pybind11;

namespace ferry::python {
namespace {

// ferry.experimental.tensor_transport's Buffer and PullItem (NamedTuples),
// looked up once with the GIL held and kept until exit.
py::handle PythonType(const char* name) {
  py::object t = py::module_::import("ferry.experimental.tensor_transport").attr(name);
  return t.release();
}

py::handle BufferType() {
  static py::handle type = PythonType("Buffer");
  return type;
}

py::handle PullItemType() {
  static py::handle type = PythonType("PullItem");
  return type;
}

py::handle GroupMemberType() {
  static py::handle type = PythonType("GroupMember");
  return type;
}

py::object Seconds(std::chrono::milliseconds d) {
  return py::float_(std::chrono::duration<double>(d).count());
}

py::object MakeBuffer(const transport::BufferView& b, bool writable) {
  return BufferType()(reinterpret_cast<uintptr_t>(b.data),
                      py::memoryview::from_memory(b.data, static_cast<py::ssize_t>(b.nbytes),
                                                  /*readonly=*/!writable));
}

py::list MakeBuffers(const std::vector<transport::BufferView>& buffers, bool writable = false) {
  py::list out;
  for (const transport::BufferView& b : buffers) out.append(MakeBuffer(b, writable));
  return out;
}

// The Status of a Python exception a user's method raised (the GIL held).
Status Raised(const std::string& name, const char* method, py::error_already_set& e) {
  std::string what = name.empty() ? "" : "tensor transport '" + name + "': ";
  what += std::string(method) + " raised " +
          py::str(e.type().attr("__name__")).cast<std::string>() + ": " +
          py::str(e.value()).cast<std::string>();
  return e.matches(PyExc_TimeoutError) ? Status::DeadlineExceeded(what) : Status::Aborted(what);
}

class PyOneSidedTransport final : public transport::OneSidedTransport {
 public:
  // Takes a reference to `instance` (the GIL held). The instance is kept
  // until exit: its last reference must not be dropped without the GIL, and
  // a process makes one per transport.
  PyOneSidedTransport(std::string name, py::object instance)
      : name_(std::move(name)), instance_(instance.release()) {}

  const std::string& name() const override { return name_; }

  StatusOr<transport::ExportedBuffers> Export(
      const std::vector<transport::BufferView>& buffers) override {
    py::gil_scoped_acquire gil;
    try {
      py::object result = instance_.attr("export")(MakeBuffers(buffers));
      auto [endpoint,
            descriptors] = result.cast<std::pair<std::string, std::vector<std::string>>>();
      return transport::ExportedBuffers{std::move(endpoint), std::move(descriptors)};
    } catch (py::error_already_set& e) {
      return Raised(name_, "export", e);
    } catch (const py::cast_error&) {
      return Status::Aborted("tensor transport '" + name_ +
                             "': export must return (endpoint: str, descriptors: list[str])");
    }
  }

  void Release(const std::vector<transport::BufferView>& buffers) override {
    py::gil_scoped_acquire gil;
    try {
      instance_.attr("release")(MakeBuffers(buffers));
    } catch (py::error_already_set& e) {
      // The object is gone either way; say so on stderr like an unraisable
      // exception.
      e.discard_as_unraisable(("ferry: tensor transport '" + name_ + "' release").c_str());
    }
  }

  Status Pull(std::span<const transport::PullItem> items, Deadline deadline) override {
    py::gil_scoped_acquire gil;
    try {
      py::list requests;
      for (const transport::PullItem& i : items) {
        requests.append(PullItemType()(py::str(i.endpoint.data(), i.endpoint.size()),
                                       py::str(i.descriptor.data(), i.descriptor.size()),
                                       MakeBuffer(i.dst, true)));
      }
      py::object timeout = py::none();
      if (!deadline.IsNever()) {
        timeout = py::float_(std::chrono::duration<double>(deadline.Remaining()).count());
      }
      instance_.attr("pull")(requests, timeout);
      return Status::Ok();
    } catch (py::error_already_set& e) {
      return Raised(name_, "pull", e);
    }
  }

 private:
  const std::string name_;
  py::handle instance_;
};

// A two-sided transport written in Python: its blocking send and recv run on
// a WaiterPool (a thread per transfer in flight, so that a transfer waiting
// for its peer never holds up another), each with the GIL; `done` fires there
// without it. Abort records the reason and calls the user's abort on the pool
// too: never the GIL on the caller's thread, which may be the io thread.
class PyTwoSidedTransport final : public transport::TwoSidedTransport {
 public:
  PyTwoSidedTransport(std::string name, const transport::TransportOptions& options,
                      py::object instance)
      : name_(std::move(name)),
        rank_(options.rank),
        size_(options.size),
        timeout_(options.transfer_timeout),
        instance_(instance.release()),
        pool_("ferry-py-transport") {}

  ~PyTwoSidedTransport() override {
    Abort(Status::Cancelled("the collective group was destroyed"));
    // The last task: drop the instance with the GIL, after every transfer.
    pool_.Submit([instance = instance_] {
      py::gil_scoped_acquire gil;
      instance.dec_ref();
    });
    // ~WaiterPool runs every task and joins its threads.
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void Send(int peer, uint64_t tag, std::vector<transport::BufferView> buffers,
            transport::TransferCallback done) override {
    pool_.Submit([this, peer, tag, buffers = std::move(buffers), done = std::move(done)] {
      done(Call("send", peer, tag, buffers, /*writable=*/false));
    });
  }

  void Recv(int peer, uint64_t tag, std::vector<transport::BufferView> buffers,
            transport::TransferCallback done) override {
    pool_.Submit([this, peer, tag, buffers = std::move(buffers), done = std::move(done)] {
      done(Call("recv", peer, tag, buffers, /*writable=*/true));
    });
  }

  void Abort(Status reason) override {
    {
      MutexLock lock(mu_);
      if (!aborted_.ok()) return;
      aborted_ = reason;
    }
    pool_.Submit([this, reason] {
      py::gil_scoped_acquire gil;
      try {
        instance_.attr("abort")(reason.ToString());
      } catch (py::error_already_set& e) {
        e.discard_as_unraisable(("ferry: tensor transport '" + name_ + "' abort").c_str());
      }
    });
  }

 private:
  Status Call(const char* method, int peer, uint64_t tag,
              const std::vector<transport::BufferView>& buffers, bool writable) {
    {
      MutexLock lock(mu_);
      if (!aborted_.ok()) return aborted_;
    }
    py::gil_scoped_acquire gil;
    try {
      instance_.attr(method)(peer, tag, MakeBuffers(buffers, writable), Seconds(timeout_));
      return Status::Ok();
    } catch (py::error_already_set& e) {
      return Raised(name_, method, e);
    }
  }

  const std::string name_;
  const int rank_;
  const int size_;
  const std::chrono::milliseconds timeout_;
  const py::handle instance_;
  Mutex mu_;
  Status aborted_ FERRY_GUARDED_BY(mu_);
  transport::WaiterPool pool_;  // last: destroyed (joined) first
};

// The GroupMember a Python two-sided factory gets: its publish and lookup
// reach `store` only until `valid` is cleared (the store lives only while the
// group is being joined).
py::object MakeGroupMember(transport::RendezvousStore& store,
                           const transport::TransportOptions& options,
                           const std::shared_ptr<bool>& valid) {
  const std::string prefix = options.prefix + "/user/";
  auto check = [valid] {
    if (!*valid) {
      throw std::runtime_error("the group's store is usable only while joining (in __init__)");
    }
  };
  py::cpp_function publish(
      [&store, prefix, check](const std::string& key, const std::string& value) {
        check();
        Status s;
        {
          py::gil_scoped_release release;
          s = store.Set(prefix + key, value);
        }
        CheckOk(s);
      });
  py::cpp_function lookup(
      [&store, prefix, check](const std::string& key, std::optional<double> timeout) {
        check();
        StatusOr<std::string> value = Status::Internal("not looked up");
        {
          py::gil_scoped_release release;
          value = store.Get(prefix + key, Deadline::FromSeconds(timeout));
        }
        return ValueOrThrow(std::move(value));
      });
  return GroupMemberType()(options.rank, options.size, options.hostname,
                           Seconds(options.transfer_timeout), publish, lookup);
}

}  // namespace

void RegisterCustomTransports(py::module_& m) {
  m.def(
      "register_two_sided_transport",
      [](const std::string& name, std::vector<std::string> devices, py::object factory) {
        py::handle make = factory.release();  // kept until exit, like the registry
        auto create = [name, make](transport::RendezvousStore& store,
                                   const transport::TransportOptions& options)
            -> StatusOr<std::unique_ptr<transport::TwoSidedTransport>> {
          py::gil_scoped_acquire gil;
          auto valid = std::make_shared<bool>(true);
          try {
            py::object instance = make(MakeGroupMember(store, options, valid));
            *valid = false;
            return std::unique_ptr<transport::TwoSidedTransport>(
                new PyTwoSidedTransport(name, options, std::move(instance)));
          } catch (py::error_already_set& e) {
            *valid = false;
            return Raised(name, "joining the group", e);
          }
        };
        CheckOk(transport::RegisterTwoSidedTransport(name, std::move(devices), create));
      },
      py::arg("name"), py::arg("devices"), py::arg("factory"),
      "Registers the two-sided transport (and collective backend) `name` for tensors of "
      "`devices`; `factory(member)` joins a group (send, recv, abort).");
  m.def(
      "register_one_sided_transport",
      [](const std::string& name, std::vector<std::string> devices, py::object factory) {
        // Kept until exit, like the registry that calls it.
        py::handle make = factory.release();
        auto create = [name, make]() -> StatusOr<std::unique_ptr<transport::OneSidedTransport>> {
          py::gil_scoped_acquire gil;
          try {
            py::object instance = make();
            return std::unique_ptr<transport::OneSidedTransport>(
                new PyOneSidedTransport(name, std::move(instance)));
          } catch (py::error_already_set& e) {
            return Raised(name, "creating it", e);
          }
        };
        CheckOk(transport::RegisterOneSidedTransport(name, std::move(devices), create));
      },
      py::arg("name"), py::arg("devices"), py::arg("factory"),
      "Registers the one-sided transport `name` for tensors of `devices`; `factory()` makes "
      "this process's instance (export, release, pull) on first use.");
}

}  // namespace ferry::python
