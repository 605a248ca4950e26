// DynamicLibrary: a shared library opened at run time with dlopen, so that
// one build runs on hosts that lack it (no GPU driver, no NCCL) and says
// why when it is missing, instead of failing to start.
//
// Libraries opened here stay loaded for the life of the process (GPU
// runtimes do not survive being unloaded); the object only names them.
//
// Thread contract: Open() is thread-safe (dlopen is); a DynamicLibrary is
// immutable after Open().
//
//   FERRY_ASSIGN_OR_RETURN(auto lib, DynamicLibrary::Open({"libfoo.so", "libfoo.so.2"}));
//   int (*version)(int*) = nullptr;
//   FERRY_RETURN_IF_ERROR(lib->Bind("fooGetVersion", &version));
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ferry/status.h"

namespace ferry {

class DynamicLibrary {
 public:
  // Opens the first of `names` that loads, each found as dlopen finds it (a
  // library of that soname already in the process, LD_LIBRARY_PATH, the
  // loader's cache); a name with a '/' is a path. NotFound lists each name
  // tried with the loader's reason.
  static StatusOr<std::unique_ptr<DynamicLibrary>> Open(const std::vector<std::string>& names);
  // Open({$env}) when the environment variable `env` is set and not empty,
  // else Open(defaults): a user may point ferry at another file.
  static StatusOr<std::unique_ptr<DynamicLibrary>> OpenConfigured(
      const char* env, const std::vector<std::string>& defaults);

  // Binds `symbol` to `*fn`. NotFound when the library lacks it.
  template <typename Fn>
  Status Bind(const char* symbol, Fn** fn) const {
    void* address = nullptr;
    FERRY_RETURN_IF_ERROR(Lookup(symbol, &address));
    *fn = reinterpret_cast<Fn*>(address);
    return Status::Ok();
  }

  // The file that was loaded (its full path where the loader tells it).
  const std::string& path() const { return path_; }

 private:
  DynamicLibrary(void* handle, std::string path) : handle_(handle), path_(std::move(path)) {}
  Status Lookup(const char* symbol, void** address) const;

  void* handle_;
  std::string path_;
};

}  // namespace ferry
