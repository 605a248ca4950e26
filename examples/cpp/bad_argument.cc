// Must NOT compile: ctest checks that the compiler rejects it with ferry's
// readable static_assert message (the argument type check).
#include "ferry/ferry.h"

class A {
 public:
  static A* Create() { return new A(); }
  double Sum(const ferry::Tensor& t) { return 0; }
};

void Misuse(ferry::ActorHandle<A> a) {
#if defined(FERRY_BAD_WRONG_TYPE)
  a.Task(&A::Sum).Remote(std::string("not a tensor"));
#elif defined(FERRY_BAD_WRONG_REF)
  a.Task(&A::Sum).Remote(ferry::ObjectRef<int>());
#else
  a.Task(&A::Sum).Remote();
#endif
}
