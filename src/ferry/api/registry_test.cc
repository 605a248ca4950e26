// FERRY_REMOTE registration and the worker-side call path, in one process.
#include "ferry/api/registry.h"

#include <gtest/gtest.h>

#include "ferry/ferry.h"

namespace {

class Counter {
 public:
  static Counter* Create(int start) { return new Counter(start); }
  explicit Counter(int start) : value_(start) {}
  int Add(int x) { return value_ += x; }
  double Scale(const ferry::Tensor& t, double k) const {
    double s = 0;
    for (float x : t.ToVector<float>()) s += x * k;
    return s;
  }
  void Reset() { value_ = 0; }
  int Unlisted() { return 0; }

 private:
  int value_;
};
FERRY_REMOTE(Counter::Create, &Counter::Add, &Counter::Scale, &Counter::Reset);

class Dup {
 public:
  static Dup* Create() { return new Dup(); }
};
FERRY_REMOTE(Dup::Create);
FERRY_REMOTE(Dup::Create);  // a duplicate on purpose: Init must refuse it

TEST(ApiRegistryTest, SplitsTheMacroArguments) {
  auto names = ferry::internal::SplitRegisteredNames(
      " A::Create, &A::M ,static_cast<int (A::*)(int, int)>(&A::N)");
  ASSERT_EQ(names.size(), 3u);
  EXPECT_EQ(names[0], "A::Create");
  EXPECT_EQ(names[1], "A::M");
  EXPECT_EQ(names[2], "static_cast<int (A::*)(int, int)>(&A::N)");
}

TEST(ApiRegistryTest, NamesComeFromTheMacro) {
  using ferry::internal::KeyOf;
  using ferry::internal::RegisteredName;
  EXPECT_EQ(RegisteredName(KeyOf(&Counter::Add), "x"), "Counter::Add");
  EXPECT_EQ(RegisteredName(KeyOf(&Counter::Create), "x"), "Counter::Create");
  auto fn = ferry::api::FindRegistered("Counter::Scale");
  ASSERT_TRUE(fn.has_value());
  EXPECT_FALSE(fn->is_factory);
  EXPECT_EQ(fn->cls, std::type_index(typeid(Counter)));
}

TEST(ApiRegistryTest, MissingRegistrationIsARegistrationError) {
  ferry::ActorHandle<Counter> handle;
  try {
    handle.Task(&Counter::Unlisted);
    FAIL() << "expected RegistrationError";
  } catch (const ferry::RegistrationError& e) {
    EXPECT_NE(std::string(e.what()).find("not registered"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("Counter"), std::string::npos) << e.what();
  }
}

TEST(ApiRegistryTest, DuplicateRegistrationIsRefusedByInit) {
  auto errors = ferry::api::RegistrationErrors();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("Dup::Create' is registered twice"), std::string::npos) << errors[0];
  EXPECT_THROW(ferry::Init(0, nullptr), ferry::RegistrationError);
  EXPECT_FALSE(ferry::IsInitialized());
}

TEST(ApiRegistryTest, CallsBeforeInitAreClearErrors) {
  EXPECT_THROW(ferry::Put(1), ferry::InvalidArgumentError);
}

// The worker path without processes: encode as a caller would, decode and
// invoke as the executor does.
ferry::internal::DecodeInput InputFor(const ferry::internal::EncodedValue& v) {
  ferry::internal::DecodeInput in;
  in.data = v.data;
  for (const auto& t : v.tensors) in.buffers.push_back({t.data_ptr(), t.nbytes(), t.keep_alive()});
  return in;
}

TEST(ApiRegistryTest, FactoryAndMethodsRunFromEncodedArguments) {
  using namespace ferry::internal;
  std::string factory = "Counter::Create";
  // A short converts to the factory's int parameter.
  EncodedArgs create = EncodeArgs(TypeList<std::tuple<int>>{}, &factory, short{40});
  CallContext cctx(InputFor(create.value), {});
  std::string name;
  cctx.ReadHeader(name);
  EXPECT_EQ(name, factory);
  std::shared_ptr<void> self = ferry::api::FindRegistered(name)->factory(cctx);

  EncodedArgs add = EncodeArgs(TypeList<std::tuple<int>>{}, nullptr, 2);
  CallContext actx(InputFor(add.value), {});
  ferry::api::FindRegistered("Counter::Add")->method(self.get(), actx);
  int result = 0;
  Decode(InputFor(actx.result()), result);
  EXPECT_EQ(result, 42);

  // Tensor argument inline (bytes as buffers) and an int converted to double.
  auto t = ferry::Tensor::FromVector(std::vector<float>{1, 2, 3});
  EncodedArgs scale = EncodeArgs(TypeList<std::tuple<const ferry::Tensor&, double>>{}, nullptr, t,
                                 2);
  EXPECT_EQ(scale.value.tensors.size(), 1u);
  CallContext sctx(InputFor(scale.value), {});
  ferry::api::FindRegistered("Counter::Scale")->method(self.get(), sctx);
  double scaled = 0;
  Decode(InputFor(sctx.result()), scaled);
  EXPECT_DOUBLE_EQ(scaled, 12.0);
}

TEST(ApiRegistryTest, DependencyArgumentsDecodeFromTheirOwnValue) {
  using namespace ferry::internal;
  // Structure: one argument, a dependency (kind 1, index 0), as a caller
  // passing an ObjectRef<int> writes it.
  std::ostringstream os(std::ios::binary);
  {
    cereal::BinaryOutputArchive ar(os);
    ar(uint8_t{1}, uint32_t{0});
  }
  EncodedValue structure{os.str(), {}};
  EncodedValue dep = Encode(5);
  auto self = std::make_shared<Counter>(1);
  CallContext ctx(InputFor(structure), {InputFor(dep)});
  ferry::api::FindRegistered("Counter::Add")->method(self.get(), ctx);
  int result = 0;
  Decode(InputFor(ctx.result()), result);
  EXPECT_EQ(result, 6);
}

}  // namespace
