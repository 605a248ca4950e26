// Registry of the C++ API's remote functions (what FERRY_REMOTE lists).
//
// Written during static initialisation (single-threaded), read afterwards
// from any thread; a mutex guards it anyway so late registration (a
// dlopen'ed library) stays safe.
#pragma once

#include <optional>
#include <string>
#include <typeindex>
#include <vector>

#include "ferry/actor.h"

namespace ferry::api {

struct RegisteredFunction {
  std::string name;
  bool is_factory = false;
  std::type_index cls = typeid(void);
  internal::ActorFactory factory;  // is_factory
  internal::MethodInvoker method;  // !is_factory
};

// The function registered as `name`, if any (a copy: safe to call unlocked).
std::optional<RegisteredFunction> FindRegistered(const std::string& name);
// Duplicate registrations found so far, one message each.
std::vector<std::string> RegistrationErrors();

}  // namespace ferry::api
