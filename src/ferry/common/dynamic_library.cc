#include "ferry/common/dynamic_library.h"

#include <dlfcn.h>
#include <link.h>

#include <cstdlib>

namespace ferry {

StatusOr<std::unique_ptr<DynamicLibrary>> DynamicLibrary::Open(
    const std::vector<std::string>& names) {
  if (names.empty()) return Status::InvalidArgument("no library name to open");
  std::string tried;
  for (const std::string& name : names) {
    // RTLD_GLOBAL: the library's own plugins (NCCL's, CUDA's) may look up
    // its symbols.
    void* handle = dlopen(name.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (handle == nullptr) {
      const char* why = dlerror();
      tried += (tried.empty() ? "" : "; ") + name + ": " + (why ? why : "not found");
      continue;
    }
    std::string path = name;
    link_map* map = nullptr;
    if (dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0 && map != nullptr && map->l_name != nullptr &&
        map->l_name[0] != '\0') {
      path = map->l_name;
    }
    return std::unique_ptr<DynamicLibrary>(new DynamicLibrary(handle, std::move(path)));
  }
  return Status::NotFound("cannot load " + names.front() + " (tried " + tried + ")");
}

StatusOr<std::unique_ptr<DynamicLibrary>> DynamicLibrary::OpenConfigured(
    const char* env, const std::vector<std::string>& defaults) {
  const char* configured = std::getenv(env);
  if (configured != nullptr && configured[0] != '\0') return Open({configured});
  return Open(defaults);
}

Status DynamicLibrary::Lookup(const char* symbol, void** address) const {
  dlerror();  // clears an earlier error
  void* found = dlsym(handle_, symbol);
  if (found == nullptr) {
    const char* why = dlerror();
    return Status::NotFound(std::string(symbol) + " is not in " + path_ +
                            (why ? std::string(": ") + why : std::string()));
  }
  *address = found;
  return Status::Ok();
}

}  // namespace ferry
