// Actors of the C++ API: registration (FERRY_REMOTE), creation
// (ferry::Actor(F).Remote(...)) and typed calls (handle.Task(&T::M).Remote(...)).
//
// An actor class needs a static factory returning a new T* and methods; list
// them once, at namespace scope in one .cc file, with FERRY_REMOTE. That runs
// at static initialisation in every process — the driver and the workers,
// which re-execute the same binary — so both sides agree on the names. A
// function listed twice, or used without being listed, is a RegistrationError
// (raised by ferry::Init, or at the call). Arguments are checked at compile
// time against the method's parameters: each must convert to the parameter
// type, or be an ObjectRef<ParameterType> (resolved before the call).
//
// Thread contract: handles and callers are values; Remote() is thread-safe.
// The registry is written only during static initialisation.
//
//   class Counter {
//    public:
//     static Counter* Create(int start) { return new Counter{start}; }
//     int Add(int x) { return value += x; }
//     int value;
//   };
//   FERRY_REMOTE(Counter::Create, &Counter::Add);
//   ferry::ActorHandle<Counter> c = ferry::Actor(Counter::Create).Remote(1);
//   ferry::ObjectRef<int> r = c.Task(&Counter::Add).Remote(2);
#pragma once

#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeindex>
#include <typeinfo>
#include <utility>
#include <vector>

#include "ferry/errors.h"
#include "ferry/object_ref.h"
#include "ferry/serialize.h"

namespace ferry {

namespace internal {

// Identifies a function pointer or member-function pointer at run time.
struct FnKey {
  std::type_index type;
  std::string bytes;
  bool operator==(const FnKey& o) const { return type == o.type && bytes == o.bytes; }
};
template <typename F>
FnKey KeyOf(F f) {
  std::string bytes(sizeof(F), '\0');
  std::memcpy(bytes.data(), &f, sizeof(F));
  return FnKey{std::type_index(typeid(F)), std::move(bytes)};
}

// One task's decoded inputs, on the worker. ReadArg reads the next argument:
// inline in the argument structure, or a dependency the core resolved.
class CallContext {
 public:
  CallContext(DecodeInput structure, std::vector<DecodeInput> deps);
  CallContext(const CallContext&) = delete;
  CallContext& operator=(const CallContext&) = delete;

  template <typename P>
  void ReadArg(P& out) {
    uint8_t kind = 0;
    uint32_t index = 0;
    try {
      archive_(kind);
      if (kind == 0) {
        DecodeScope scope(&structure_.buffers);
        archive_(out);
        return;
      }
      archive_(index);
    } catch (const cereal::Exception& e) {
      ThrowDecodeError(e.what());
    }
    if (index >= deps_.size()) ThrowDecodeError("dependency index out of range");
    Decode(deps_[index], out);
  }
  template <typename P>
  void ReadHeader(P& out) {
    try {
      archive_(out);
    } catch (const cereal::Exception& e) {
      ThrowDecodeError(e.what());
    }
  }
  void SetResult(EncodedValue v) { result_ = std::move(v); }
  EncodedValue& result() { return result_; }

 private:
  DecodeInput structure_;
  std::vector<DecodeInput> deps_;
  ViewStreamBuf buf_;
  std::istream stream_;
  cereal::BinaryInputArchive archive_;
  EncodedValue result_;
};

using MethodInvoker = std::function<void(void* self, CallContext& ctx)>;
using ActorFactory = std::function<std::shared_ptr<void>(CallContext& ctx)>;

// Registry (src/ferry/api/registry.cc). Errors found while registering are
// kept and raised by ferry::Init (static initialisation cannot throw).
void RegisterFactory(const std::string& name, FnKey key, std::type_index cls, ActorFactory f);
void RegisterMethod(const std::string& name, FnKey key, std::type_index cls, MethodInvoker m);
// The registered name of `key`; throws RegistrationError naming `what`.
const std::string& RegisteredName(const FnKey& key, const std::string& what);
std::vector<std::string> SplitRegisteredNames(const char* list);
std::string Demangle(const char* mangled);

template <typename T>
struct TypeList {};

template <typename P, typename A>
constexpr bool ArgMatches() {
  using D = std::decay_t<P>;
  using AD = std::decay_t<A>;
  if constexpr (IsObjectRef<AD>::value) {
    return std::is_same_v<typename AD::value_type, D>;
  } else {
    return std::is_convertible_v<A, D>;
  }
}

template <typename P>
constexpr void CheckParam() {
  using D = std::decay_t<P>;
  static_assert(!std::is_pointer_v<D>,
                "ferry: a remote method's parameter is a pointer; pointers cannot cross processes, "
                "take the value (or a const reference) instead");
  static_assert(
      !IsObjectRef<D>::value,
      "ferry: a remote method's parameter is an ObjectRef; declare the value type T "
      "instead and pass the ObjectRef<T> as the argument (it is resolved before the call)");
  static_assert(std::is_default_constructible_v<D>,
                "ferry: a remote method's parameter type must be default-constructible "
                "(it is decoded into a default-constructed value)");
}

template <typename... Params, typename... Args>
constexpr void CheckArgs(TypeList<std::tuple<Params...>>, TypeList<std::tuple<Args...>>) {
  (CheckParam<Params>(), ...);
  static_assert(sizeof...(Params) == sizeof...(Args),
                "ferry: wrong number of arguments: Remote(...) takes exactly the parameters of "
                "the method (or factory) it calls");
  if constexpr (sizeof...(Params) == sizeof...(Args)) {
    static_assert((ArgMatches<Params, Args>() && ...),
                  "ferry: an argument's type does not match the method's parameter: pass a value "
                  "convertible to the parameter type, or an ObjectRef<ParameterType> (resolved "
                  "before the call)");
  }
}

template <typename... Params, typename... Args>
constexpr bool ArgsOk(TypeList<std::tuple<Params...>>, TypeList<std::tuple<Args...>>) {
  if constexpr (sizeof...(Params) != sizeof...(Args)) {
    return false;
  } else {
    return (ArgMatches<Params, Args>() && ...);
  }
}

// Arguments as the caller sends them: the structure and the refs it names.
struct EncodedArgs {
  EncodedValue value;
  std::vector<std::shared_ptr<RefState>> refs;
};

template <typename P, typename A>
void WriteArg(cereal::BinaryOutputArchive& ar, EncodedArgs& out, A&& a) {
  using D = std::decay_t<P>;
  using AD = std::decay_t<A>;
  if constexpr (IsObjectRef<AD>::value) {
    if (a.IsNull())
      ThrowStatus(Status::InvalidArgument("a null ObjectRef was passed as an argument"));
    ar(uint8_t{1}, static_cast<uint32_t>(out.refs.size()));
    out.refs.push_back(a.state());
  } else if constexpr (std::is_same_v<AD, D>) {
    ar(uint8_t{0}, a);
  } else {
    const D converted(std::forward<A>(a));
    ar(uint8_t{0}, converted);
  }
}

template <typename... Params, typename... Args>
EncodedArgs EncodeArgs(TypeList<std::tuple<Params...>>, const std::string* header, Args&&... args) {
  EncodedArgs out;
  std::ostringstream os(std::ios::binary);
  {
    EncodeScope scope(&out.value.tensors);
    cereal::BinaryOutputArchive ar(os);
    if (header) ar(*header);
    (WriteArg<Params>(ar, out, std::forward<Args>(args)), ...);
  }
  out.value.data = std::move(os).str();
  return out;
}

// Reads the arguments in order, then calls `f` with each forwarded as its
// parameter type (a value parameter is moved in, a reference binds to it).
template <typename... Params, typename F, size_t... I>
decltype(auto) ReadAndCall(CallContext& ctx, F& f, std::index_sequence<I...>) {
  std::tuple<std::decay_t<Params>...> values;
  (ctx.ReadArg(std::get<I>(values)), ...);  // in order: a fold over ',' is sequenced
  return f(std::forward<Params>(std::get<I>(values))...);
}

template <typename T, typename R, typename M, typename... Params>
MethodInvoker MakeInvoker(M method) {
  return [method](void* self, CallContext& ctx) {
    T* obj = static_cast<T*>(self);
    auto call = [&](auto&&... a) -> R { return (obj->*method)(std::forward<decltype(a)>(a)...); };
    if constexpr (std::is_void_v<R>) {
      ReadAndCall<Params...>(ctx, call, std::index_sequence_for<Params...>{});
      ctx.SetResult(EncodedValue{});
    } else {
      const std::decay_t<R>& r = ReadAndCall<Params...>(ctx, call,
                                                        std::index_sequence_for<Params...>{});
      ctx.SetResult(Encode(r));
    }
  };
}

template <typename T, typename... P>
void RegisterOne(const std::string& name, T* (*factory)(P...)) {
  (CheckParam<P>(), ...);
  RegisterFactory(name, KeyOf(factory), typeid(T), [factory](CallContext& ctx) {
    auto call = [&](auto&&... a) -> T* { return factory(std::forward<decltype(a)>(a)...); };
    T* obj = ReadAndCall<P...>(ctx, call, std::index_sequence_for<P...>{});
    if (obj == nullptr) throw std::runtime_error("the actor factory returned null");
    return std::shared_ptr<void>(obj, [](void* p) { delete static_cast<T*>(p); });
  });
}
template <typename T, typename R, typename... P>
void RegisterOne(const std::string& name, R (T::*method)(P...)) {
  (CheckParam<P>(), ...);
  RegisterMethod(name, KeyOf(method), typeid(T), MakeInvoker<T, R, decltype(method), P...>(method));
}
template <typename T, typename R, typename... P>
void RegisterOne(const std::string& name, R (T::*method)(P...) const) {
  (CheckParam<P>(), ...);
  RegisterMethod(name, KeyOf(method), typeid(T), MakeInvoker<T, R, decltype(method), P...>(method));
}
template <typename F>
void RegisterOne(const std::string&, F) {
  static_assert(sizeof(F) == 0,
                "ferry: FERRY_REMOTE takes static factory functions returning T* (T::Create) and "
                "member-function pointers (&T::Method)");
}

template <typename... Fs>
struct Registrar {
  explicit Registrar(const char* names, Fs... fs) {
    std::vector<std::string> list = SplitRegisteredNames(names);
    size_t i = 0;
    (RegisterOne(i < list.size() ? list[i++] : std::string("?"), fs), ...);
  }
};

struct ActorOptionsRaw {
  std::string name;
  int max_concurrency = 1;
  int max_restarts = 0;
};

// Caller side (src/ferry/api/runtime.cc).
std::string CreateActorRaw(const std::string& factory, const std::string& class_name,
                           const ActorOptionsRaw& options, EncodedArgs args);
std::shared_ptr<RefState> SubmitTaskRaw(const std::string& actor_id, const std::string& method,
                                        const std::string& tensor_transport, int max_task_retries,
                                        EncodedArgs args);
void KillActorRaw(const std::string& actor_id, bool no_restart);
std::string HexOf(const std::string& binary);

}  // namespace internal

// Untyped actor identity; what CreateCollectiveGroup and Kill take.
class ActorHandleBase {
 public:
  ActorHandleBase() = default;
  bool IsNull() const { return actor_id_.empty(); }
  std::string Hex() const { return internal::HexOf(actor_id_); }
  // The binary actor id (used by the API itself).
  const std::string& id() const { return actor_id_; }

 protected:
  explicit ActorHandleBase(std::string id) : actor_id_(std::move(id)) {}
  std::string actor_id_;
};

// A call being set up: handle.Task(&T::M)[.SetTensorTransport("gloo")].Remote(args...).
template <typename T, typename R, typename... Params>
class ActorTaskCaller {
 public:
  using Result = std::decay_t<R>;
  ActorTaskCaller(std::string actor_id, std::string method)
      : actor_id_(std::move(actor_id)), method_(std::move(method)) {}

  // Keep the returned tensors in the actor and move them with `transport`
  // ("gloo", ...; "object_store" or "" is the default: copy into the object store).
  ActorTaskCaller& SetTensorTransport(std::string transport) {
    transport_ = std::move(transport);
    return *this;
  }
  // Re-send the call to the restarted actor if the actor's death interrupts
  // it, up to `n` times (-1: always); as Ray's max_task_retries.
  ActorTaskCaller& SetMaxTaskRetries(int n) {
    max_task_retries_ = n;
    return *this;
  }

  template <typename... Args>
  ObjectRef<Result> Remote(Args&&... args) const {
    internal::CheckArgs(internal::TypeList<std::tuple<Params...>>{},
                        internal::TypeList<std::tuple<Args&&...>>{});
    if constexpr (internal::ArgsOk(internal::TypeList<std::tuple<Params...>>{},
                                   internal::TypeList<std::tuple<Args&&...>>{})) {
      internal::EncodedArgs encoded = internal::EncodeArgs(
          internal::TypeList<std::tuple<Params...>>{}, nullptr, std::forward<Args>(args)...);
      return ObjectRef<Result>(internal::SubmitTaskRaw(actor_id_, method_, transport_,
                                                       max_task_retries_, std::move(encoded)));
    } else {
      return ObjectRef<Result>();
    }
  }

 private:
  std::string actor_id_;
  std::string method_;
  std::string transport_;
  int max_task_retries_ = 0;
};

template <typename T>
class ActorHandle : public ActorHandleBase {
 public:
  ActorHandle() = default;
  // Used by the API itself.
  explicit ActorHandle(std::string id) : ActorHandleBase(std::move(id)) {}

  template <typename R, typename... P>
  ActorTaskCaller<T, R, P...> Task(R (T::*method)(P...)) const {
    return ActorTaskCaller<T, R, P...>(actor_id_, NameOf(internal::KeyOf(method)));
  }
  template <typename R, typename... P>
  ActorTaskCaller<T, R, P...> Task(R (T::*method)(P...) const) const {
    return ActorTaskCaller<T, R, P...>(actor_id_, NameOf(internal::KeyOf(method)));
  }

 private:
  static const std::string& NameOf(const internal::FnKey& key) {
    return internal::RegisteredName(key, "a method of " + internal::Demangle(typeid(T).name()));
  }
};

// ferry::Actor(Factory)[.SetName(..)][.SetMaxConcurrency(n)].Remote(args...).
template <typename T, typename... Params>
class ActorCreator {
 public:
  explicit ActorCreator(T* (*factory)(Params...))
      : factory_(internal::RegisteredName(
            internal::KeyOf(factory), "the factory of " + internal::Demangle(typeid(T).name()))) {}

  ActorCreator& SetName(std::string name) {
    options_.name = std::move(name);
    return *this;
  }
  // Tasks that may run at once in the actor (each on its own thread).
  ActorCreator& SetMaxConcurrency(int n) {
    options_.max_concurrency = n;
    return *this;
  }
  // Re-create the actor (running its factory again) when its process dies,
  // up to `n` times (-1: always); as Ray's max_restarts.
  ActorCreator& SetMaxRestarts(int n) {
    options_.max_restarts = n;
    return *this;
  }

  // Starts the actor's process and returns at once; a constructor that
  // throws surfaces as ActorDiedError on the actor's calls.
  template <typename... Args>
  ActorHandle<T> Remote(Args&&... args) const {
    internal::CheckArgs(internal::TypeList<std::tuple<Params...>>{},
                        internal::TypeList<std::tuple<Args&&...>>{});
    if constexpr (internal::ArgsOk(internal::TypeList<std::tuple<Params...>>{},
                                   internal::TypeList<std::tuple<Args&&...>>{})) {
      internal::EncodedArgs encoded = internal::EncodeArgs(
          internal::TypeList<std::tuple<Params...>>{}, &factory_, std::forward<Args>(args)...);
      return ActorHandle<T>(internal::CreateActorRaw(factory_, internal::Demangle(typeid(T).name()),
                                                     options_, std::move(encoded)));
    } else {
      return ActorHandle<T>();
    }
  }

 private:
  std::string factory_;
  internal::ActorOptionsRaw options_;
};

template <typename T, typename... Params>
ActorCreator<T, Params...> Actor(T* (*factory)(Params...)) {
  return ActorCreator<T, Params...>(factory);
}

}  // namespace ferry

#define FERRY_REMOTE_CONCAT_INNER_(a, b) a##b
#define FERRY_REMOTE_CONCAT_(a, b) FERRY_REMOTE_CONCAT_INNER_(a, b)
// At namespace scope, once per binary: FERRY_REMOTE(T::Create, &T::Method, ...).
#define FERRY_REMOTE(...)                                                                         \
  static const ::ferry::internal::Registrar FERRY_REMOTE_CONCAT_(ferry_registrar_, __COUNTER__) { \
#__VA_ARGS__, __VA_ARGS__                                                                     \
  }
