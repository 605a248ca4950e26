// Serialization, tensors and the error table of the C++ API, in one process.
#include <gtest/gtest.h>

#include "ferry/ferry.h"

namespace ferry {
namespace {

struct Batch {
  std::string name;
  std::map<std::string, std::vector<Tensor>> tensors;
  int step = 0;
  FERRY_SERIALIZE(name, tensors, step)
};

// The buffers Decode reads for an EncodedValue: its own tensors, no copy.
internal::DecodeInput InputFor(const internal::EncodedValue& v) {
  internal::DecodeInput in;
  in.data = v.data;
  for (const Tensor& t : v.tensors)
    in.buffers.push_back({t.data_ptr(), t.nbytes(), t.keep_alive()});
  return in;
}

TEST(ApiSerializeTest, PlainValuesRoundTrip) {
  std::map<std::string, std::vector<double>> value{{"a", {1.5, 2.5}}, {"b", {}}};
  internal::EncodedValue e = internal::Encode(value);
  EXPECT_TRUE(e.tensors.empty());
  std::map<std::string, std::vector<double>> back;
  internal::Decode(InputFor(e), back);
  EXPECT_EQ(back, value);
}

TEST(ApiSerializeTest, NestedTensorsTravelBesideTheArchive) {
  Batch b;
  b.name = "x";
  b.step = 7;
  b.tensors["w"] = {Tensor::FromVector(std::vector<float>{1, 2, 3, 4}, {2, 2}),
                    Tensor::FromVector(std::vector<int64_t>{5})};
  internal::EncodedValue e = internal::Encode(b);
  ASSERT_EQ(e.tensors.size(), 2u);
  // The archive holds no tensor bytes: only an index, dtype and shape each.
  EXPECT_LT(e.data.size(), 100u);
  Batch back;
  internal::Decode(InputFor(e), back);
  EXPECT_EQ(back.name, "x");
  EXPECT_EQ(back.step, 7);
  ASSERT_EQ(back.tensors["w"].size(), 2u);
  const Tensor& w = back.tensors["w"][0];
  EXPECT_EQ(w.shape(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(w.ToVector<float>(), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_TRUE(w.SharesMemoryWith(b.tensors["w"][0]));  // no copy
  EXPECT_EQ(back.tensors["w"][1].dtype(), DType::kInt64);
}

TEST(ApiSerializeTest, GarbageIsAnInvalidArgumentError) {
  internal::DecodeInput in;
  in.data = "\x01";
  std::string s;
  EXPECT_THROW(internal::Decode(in, s), InvalidArgumentError);
}

TEST(ApiSerializeTest, TensorWithoutItsBytesIsAnError) {
  internal::EncodedValue e = internal::Encode(Tensor::FromVector(std::vector<float>{1, 2}));
  internal::DecodeInput in;
  in.data = e.data;  // no buffers
  Tensor t;
  EXPECT_THROW(internal::Decode(in, t), InvalidArgumentError);
  in.buffers.push_back({e.tensors[0].data_ptr(), 4, nullptr});  // wrong size
  EXPECT_THROW(internal::Decode(in, t), InvalidArgumentError);
}

TEST(ApiTensorTest, ConstructAndAccess) {
  Tensor t = Tensor::FromVector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.nbytes(), 24u);
  EXPECT_EQ(t.data<float>()[5], 6.f);
  EXPECT_THROW(t.data<double>(), InvalidArgumentError);
  Tensor c = t.Clone();
  EXPECT_FALSE(c.SharesMemoryWith(t));
  EXPECT_EQ(c.ToVector<float>(), t.ToVector<float>());
  uint8_t raw[3] = {1, 2, 3};
  EXPECT_THROW(Tensor::FromBytes(raw, 3, DType::kFloat32, {1}), InvalidArgumentError);
  EXPECT_EQ(Tensor::FromBytes(raw, 3, DType::kUInt8, {3}).ToVector<uint8_t>()[2], 3);
  EXPECT_EQ(DTypeFromName(DTypeName(DType::kBFloat16)), DType::kBFloat16);
}

TEST(ApiTensorTest, DLPackRoundTripSharesMemory) {
  Tensor t = Tensor::FromVector(std::vector<int32_t>{1, 2, 3, 4}, {4, 1});
  DLManagedTensor* m = t.ToDLPack();
  EXPECT_EQ(m->dl_tensor.ndim, 2);
  EXPECT_EQ(m->dl_tensor.dtype.bits, 32);
  Tensor back = Tensor::FromDLPack(m);
  EXPECT_TRUE(back.SharesMemoryWith(t));
  EXPECT_EQ(back.dtype(), DType::kInt32);
  EXPECT_EQ(back.shape(), t.shape());
}

TEST(ApiErrorsTest, OneTableMapsCodesToTypes) {
  EXPECT_THROW(internal::ThrowStatus(Status::TaskError("m")), TaskError);
  EXPECT_THROW(internal::ThrowStatus(Status::Unavailable("m")), ActorDiedError);
  EXPECT_THROW(internal::ThrowStatus(Status::DeadlineExceeded("m")), GetTimeoutError);
  EXPECT_THROW(internal::ThrowStatus(Status::Aborted("m")), TransportError);
  EXPECT_THROW(internal::ThrowStatus(Status::DataLoss("m")), ObjectLostError);
  EXPECT_THROW(internal::ThrowStatus(Status::InvalidArgument("m")), InvalidArgumentError);
  EXPECT_THROW(internal::ThrowStatus(Status::Unimplemented("m")), UnimplementedError);
  try {
    internal::ThrowStatus(Status::TaskError("the message"));
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "the message");
    EXPECT_EQ(e.status().code(), StatusCode::kTaskError);
  }
}

}  // namespace
}  // namespace ferry
