#include "ferry/api/registry.h"

#include <cxxabi.h>

#include <cstdlib>
#include <map>
#include <mutex>

namespace ferry {
namespace api {
namespace {

struct Entry {
  RegisteredFunction fn;
  internal::FnKey key;
};

struct Registry {
  std::mutex mu;
  std::map<std::string, Entry> by_name;
  std::vector<std::string> errors;
};

Registry& Get() {
  static Registry* r = new Registry();  // never destroyed: used from static init and exit paths
  return *r;
}

void Add(RegisteredFunction fn, internal::FnKey key) {
  Registry& r = Get();
  std::lock_guard<std::mutex> lock(r.mu);
  if (r.by_name.count(fn.name)) {
    r.errors.push_back("'" + fn.name +
                       "' is registered twice: list each function in exactly one FERRY_REMOTE, "
                       "in one .cc file (not in a header)");
    return;
  }
  for (const auto& [name, e] : r.by_name) {
    if (e.key == key) {
      r.errors.push_back("'" + fn.name + "' and '" + name +
                         "' name the same function: list it once in FERRY_REMOTE");
      return;
    }
  }
  std::string name = fn.name;
  r.by_name.emplace(name, Entry{std::move(fn), std::move(key)});
}

}  // namespace

std::optional<RegisteredFunction> FindRegistered(const std::string& name) {
  Registry& r = Get();
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.by_name.find(name);
  if (it == r.by_name.end()) return std::nullopt;
  return it->second.fn;
}

std::vector<std::string> RegistrationErrors() {
  Registry& r = Get();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.errors;
}

}  // namespace api

namespace internal {

void RegisterFactory(const std::string& name, FnKey key, std::type_index cls, ActorFactory f) {
  api::RegisteredFunction fn;
  fn.name = name;
  fn.is_factory = true;
  fn.cls = cls;
  fn.factory = std::move(f);
  api::Add(std::move(fn), std::move(key));
}

void RegisterMethod(const std::string& name, FnKey key, std::type_index cls, MethodInvoker m) {
  api::RegisteredFunction fn;
  fn.name = name;
  fn.cls = cls;
  fn.method = std::move(m);
  api::Add(std::move(fn), std::move(key));
}

const std::string& RegisteredName(const FnKey& key, const std::string& what) {
  api::Registry& r = api::Get();
  std::lock_guard<std::mutex> lock(r.mu);
  for (const auto& [name, e] : r.by_name) {
    if (e.key == key) return name;  // entries are never removed: the reference stays valid
  }
  throw RegistrationError(Status::NotFound(
      "ferry: " + what +
      " is not registered; list it in FERRY_REMOTE(Class::Create, &Class::Method, ...) at "
      "namespace scope in one .cc file"));
}

std::vector<std::string> SplitRegisteredNames(const char* list) {
  std::vector<std::string> out;
  std::string cur;
  int depth = 0;
  auto flush = [&] {
    size_t b = cur.find_first_not_of(" \t\n&");
    size_t e = cur.find_last_not_of(" \t\n");
    out.push_back(b == std::string::npos ? std::string() : cur.substr(b, e - b + 1));
    cur.clear();
  };
  for (const char* p = list; *p; ++p) {
    char c = *p;
    if (c == '(' || c == '<' || c == '[') ++depth;
    if (c == ')' || c == '>' || c == ']') --depth;
    if (c == ',' && depth == 0) {
      flush();
      continue;
    }
    cur.push_back(c);
  }
  flush();
  return out;
}

std::string Demangle(const char* mangled) {
  int status = 0;
  char* d = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  if (status != 0 || d == nullptr) return mangled;
  std::string out(d);
  std::free(d);
  return out;
}

}  // namespace internal
}  // namespace ferry
