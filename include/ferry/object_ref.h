// ferry::ObjectRef<T>: a typed future for a value of type T.
//
// Returned by ActorTaskCaller::Remote and ferry::Put. While any copy of a ref
// is alive its value stays alive (the owner's reference count); when the last
// copy dies the value is freed — for a tensor kept in its producer (RDT), that
// is what unblocks ferry::WaitTensorFreed there. Pass a ref where a method
// takes a T and ferry resolves it before the call (tensors move directly from
// the producer). Read it with ferry::Get (ferry.h).
//
// Thread contract: a value type; copies may be used and dropped on any thread.
//
//   ferry::ObjectRef<double> r = actor.Task(&Counter::Add).Remote(1.5);
//   ferry::ObjectRef<double> r2 = actor.Task(&Counter::Add).Remote(r);  // resolved first
//   double v = *ferry::Get(r2);
#pragma once

#include <memory>
#include <string>
#include <type_traits>

namespace ferry {

namespace internal {
// The core's ref plus the runtime it is counted in (src/ferry/api/ref_state.h).
class RefState;
std::string RefHex(const RefState& state);
}  // namespace internal

template <typename T>
class ObjectRef {
 public:
  using value_type = T;

  // A null ref: refers to nothing (Get throws InvalidArgumentError).
  ObjectRef() = default;
  // Used by the API itself.
  explicit ObjectRef(std::shared_ptr<internal::RefState> state) : state_(std::move(state)) {}

  bool IsNull() const { return state_ == nullptr; }
  // The object id in hex ("" for a null ref).
  std::string Hex() const { return state_ ? internal::RefHex(*state_) : std::string(); }
  const std::shared_ptr<internal::RefState>& state() const { return state_; }

  friend bool operator==(const ObjectRef& a, const ObjectRef& b) { return a.Hex() == b.Hex(); }

 private:
  std::shared_ptr<internal::RefState> state_;
};

// ObjectRefs are arguments, not values: one inside a serialized value (a
// struct member, a vector element) is refused at compile time.
template <class Archive, typename T>
void save(Archive&, const ObjectRef<T>&) {
  static_assert(sizeof(Archive) == 0,
                "ferry: an ObjectRef inside a serialized value is not supported; pass it as a "
                "top-level argument (it is resolved before the call) or Get it first");
}

template <typename T>
struct IsObjectRef : std::false_type {};
template <typename T>
struct IsObjectRef<ObjectRef<T>> : std::true_type {};

}  // namespace ferry
