#include "ferry/tensor/tensor.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <vector>

#include "ferry/tensor/dtype.h"

namespace ferry::tensor {
namespace {

// A hand-made DLManagedTensor over a heap buffer whose deleter counts calls
// and frees the buffer, like a framework's would.
struct FakeFramework {
  std::atomic<int> deletes{0};

  struct Ctx {
    FakeFramework* fw;
    std::vector<float> buffer;
    std::vector<int64_t> shape;
    std::vector<int64_t> strides;
  };

  DLManagedTensor* Make(std::vector<int64_t> shape, std::vector<int64_t> strides = {}) {
    auto* ctx = new Ctx{this, {}, std::move(shape), std::move(strides)};
    int64_t numel = 1;
    for (int64_t d : ctx->shape) numel *= d;
    ctx->buffer.assign(numel, 1.5f);
    auto* m = new DLManagedTensor{};
    m->dl_tensor.data = ctx->buffer.data();
    m->dl_tensor.device = {kDLCPU, 0};
    m->dl_tensor.ndim = static_cast<int32_t>(ctx->shape.size());
    m->dl_tensor.dtype = {kDLFloat, 32, 1};
    m->dl_tensor.shape = ctx->shape.data();
    m->dl_tensor.strides = ctx->strides.empty() ? nullptr : ctx->strides.data();
    m->manager_ctx = ctx;
    m->deleter = [](DLManagedTensor* self) {
      auto* c = static_cast<Ctx*>(self->manager_ctx);
      c->fw->deletes.fetch_add(1);
      delete c;
      delete self;
    };
    return m;
  }
};

proto::TensorMetaProto Meta(uint64_t nbytes, std::string device = "cpu") {
  proto::TensorMetaProto meta;
  meta.set_dtype("float32");
  meta.set_device(std::move(device));
  meta.set_nbytes(nbytes);
  return meta;
}

TEST(TensorTest, FromDLPackDeleterRunsOnceWhenLastCopyDies) {
  FakeFramework fw;
  StatusOr<Tensor> t = Tensor::FromDLPack(fw.Make({2, 3}), Meta(24));
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->nbytes(), 24u);
  EXPECT_EQ(t->meta().dtype(), "float32");
  float first;
  std::memcpy(&first, t->data(), sizeof(first));
  EXPECT_EQ(first, 1.5f);
  {
    Tensor copy = *t;
    Tensor copy2 = copy;
    t = Status::Cancelled("drop the original");
    EXPECT_EQ(fw.deletes.load(), 0);
    EXPECT_EQ(copy2.data(), copy.data());
  }
  EXPECT_EQ(fw.deletes.load(), 1);
}

TEST(TensorTest, FromDLPackFillsEmptyDeviceAndAcceptsCompactStrides) {
  FakeFramework fw;
  // Size-1 dimensions may carry any stride.
  StatusOr<Tensor> t = Tensor::FromDLPack(fw.Make({2, 1, 3}, {3, 99, 1}), Meta(24, ""));
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->meta().device(), "cpu");
  t = Status::Cancelled("drop");
  EXPECT_EQ(fw.deletes.load(), 1);
}

TEST(TensorTest, FromDLPackRejectsNonContiguousAndStillDeletesOnce) {
  FakeFramework fw;
  // A transposed 2x3 view: strides {1, 2} instead of {3, 1}.
  StatusOr<Tensor> t = Tensor::FromDLPack(fw.Make({2, 3}, {1, 2}), Meta(24));
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find("not contiguous"), std::string::npos) << t.status();
  EXPECT_EQ(fw.deletes.load(), 1);
}

TEST(TensorTest, FromDLPackRejectsWrongNbytesDeviceAndKind) {
  FakeFramework fw;
  StatusOr<Tensor> t = Tensor::FromDLPack(fw.Make({2, 3}), Meta(20));
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  t = Tensor::FromDLPack(fw.Make({2, 3}), Meta(24, "cuda:0"));
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  DLManagedTensor* opencl = fw.Make({4});
  opencl->dl_tensor.device = {kDLOpenCL, 0};
  t = Tensor::FromDLPack(opencl, Meta(16));
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(fw.deletes.load(), 3);
  EXPECT_EQ(Tensor::FromDLPack(nullptr, Meta(0)).status().code(), StatusCode::kInvalidArgument);
}

TEST(TensorTest, FromDLPackAcceptsCudaDescriptorWithoutTouchingIt) {
  FakeFramework fw;
  DLManagedTensor* m = fw.Make({4});
  m->dl_tensor.device = {kDLCUDA, 1};
  StatusOr<Tensor> t = Tensor::FromDLPack(m, Meta(16, "cuda:1"));
  ASSERT_TRUE(t.ok()) << t.status();
  DLManagedTensor* out = t->ToDLPack();
  EXPECT_EQ(out->dl_tensor.device.device_type, kDLCUDA);
  EXPECT_EQ(out->dl_tensor.device.device_id, 1);
  out->deleter(out);
}

TEST(TensorTest, ToDLPackKeepsMemoryAliveUntilItsDeleterRuns) {
  FakeFramework fw;
  StatusOr<Tensor> t = Tensor::FromDLPack(fw.Make({2, 3}), Meta(24));
  ASSERT_TRUE(t.ok()) << t.status();
  void* data = t->data();
  DLManagedTensor* out = t->ToDLPack();
  t = Status::Cancelled("the Tensor is gone; only the export remains");
  EXPECT_EQ(fw.deletes.load(), 0);

  const DLTensor& d = out->dl_tensor;
  EXPECT_EQ(d.data, data);
  EXPECT_EQ(d.ndim, 1);
  EXPECT_EQ(d.shape[0], 24);
  EXPECT_EQ(d.strides[0], 1);
  EXPECT_EQ(d.byte_offset, 0u);
  EXPECT_EQ(d.dtype.code, kDLUInt);
  EXPECT_EQ(d.dtype.bits, 8);
  EXPECT_EQ(d.dtype.lanes, 1);
  EXPECT_EQ(d.device.device_type, kDLCPU);
  float first;
  std::memcpy(&first, d.data, sizeof(first));  // still readable (ASan would flag otherwise)
  EXPECT_EQ(first, 1.5f);

  out->deleter(out);
  EXPECT_EQ(fw.deletes.load(), 1);
}

TEST(TensorTest, FromDLPackWithoutMetaDerivesItFromACompactTensor) {
  FakeFramework fw;
  StatusOr<Tensor> t = Tensor::FromDLPack(fw.Make({2, 3}));
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->meta().dtype(), "float32");
  EXPECT_EQ(t->meta().device(), "cpu");
  EXPECT_EQ(t->meta().nbytes(), 24u);
  EXPECT_EQ(t->nbytes(), 24u);
  ASSERT_EQ(t->meta().shape_size(), 2);
  EXPECT_EQ(t->meta().shape(0), 2);
  EXPECT_EQ(t->meta().shape(1), 3);
  EXPECT_EQ(t->meta().strides_size(), 0);  // compact: no strides travel
  t = Status::Cancelled("dropped");
  EXPECT_EQ(fw.deletes.load(), 1);
}

TEST(TensorTest, FromDLPackWithoutMetaKeepsTheStridesAndSpanOfAStridedTensor) {
  FakeFramework fw;
  // Every other element of six: three elements spanning five.
  DLManagedTensor* m = fw.Make({6});
  int64_t strides[] = {2};
  m->dl_tensor.shape[0] = 3;
  m->dl_tensor.strides = strides;
  StatusOr<Tensor> t = Tensor::FromDLPack(m);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->nbytes(), 20u);
  ASSERT_EQ(t->meta().strides_size(), 1);
  EXPECT_EQ(t->meta().strides(0), 2);
  EXPECT_EQ(t->meta().shape(0), 3);

  // Back out typed: the same view, over the same bytes.
  StatusOr<DLManagedTensor*> out = t->ToTypedDLPack();
  ASSERT_TRUE(out.ok()) << out.status();
  const DLTensor& d = (*out)->dl_tensor;
  EXPECT_EQ(d.data, t->data());
  EXPECT_EQ(d.dtype.code, kDLFloat);
  EXPECT_EQ(d.dtype.bits, 32);
  ASSERT_EQ(d.ndim, 1);
  EXPECT_EQ(d.shape[0], 3);
  ASSERT_NE(d.strides, nullptr);
  EXPECT_EQ(d.strides[0], 2);
  t = Status::Cancelled("only the export remains");
  EXPECT_EQ(fw.deletes.load(), 0);
  (*out)->deleter(*out);
  EXPECT_EQ(fw.deletes.load(), 1);
}

TEST(TensorTest, FromDLPackWithoutMetaRejectsNegativeStridesAndUnnamedDtypes) {
  FakeFramework fw;
  DLManagedTensor* m = fw.Make({2, 3});
  int64_t strides[] = {-3, 1};
  m->dl_tensor.strides = strides;
  StatusOr<Tensor> t = Tensor::FromDLPack(m);
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find("negative stride"), std::string::npos) << t.status();
  m = fw.Make({4});
  m->dl_tensor.dtype = {kDLFloat, 32, 4};  // four lanes: no dtype name
  t = Tensor::FromDLPack(m);
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find("no ferry dtype name"), std::string::npos) << t.status();
  EXPECT_EQ(fw.deletes.load(), 2);
}

TEST(TensorTest, ToTypedDLPackDescribesTheMetadataOrRefuses) {
  CpuAllocator alloc(1 << 20);
  proto::TensorMetaProto meta = Meta(24);
  meta.add_shape(2);
  meta.add_shape(3);
  auto t = Tensor::AllocateCpu(meta, alloc);
  ASSERT_TRUE(t.ok()) << t.status();
  StatusOr<DLManagedTensor*> out = t->ToTypedDLPack();
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)->dl_tensor.ndim, 2);
  EXPECT_EQ((*out)->dl_tensor.strides, nullptr);  // row-major
  (*out)->deleter(*out);

  proto::TensorMetaProto odd = meta;
  odd.set_dtype("float8_e4m3");  // no DLPack type in this table
  auto u = Tensor::AllocateCpu(odd, alloc);
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->ToTypedDLPack().status().code(), StatusCode::kInvalidArgument);

  proto::TensorMetaProto big = meta;
  big.set_nbytes(16);  // the shape needs 24 bytes
  auto v = Tensor::AllocateCpu(big, alloc);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->ToTypedDLPack().status().code(), StatusCode::kInvalidArgument);
}

TEST(DtypeTest, NamesAndDLPackTypesRoundTrip) {
  for (std::string_view name :
       {"float32", "float64", "float16", "bfloat16", "int8", "int16", "int32", "int64", "uint8",
        "bool", "complex32", "complex64", "complex128"}) {
    std::optional<DLDataType> type = DLDataTypeOfName(name);
    ASSERT_TRUE(type.has_value()) << name;
    EXPECT_EQ(type->lanes, 1);
    EXPECT_EQ(NameOfDLDataType(*type), name);
  }
  EXPECT_EQ(DLDataTypeOfName("bfloat16")->code, kDLBfloat);
  EXPECT_EQ(DLDataTypeOfName("bool")->code, kDLBoolCode);
  EXPECT_FALSE(DLDataTypeOfName("float").has_value());
  EXPECT_FALSE(NameOfDLDataType(DLDataType{kDLFloat, 32, 2}).has_value());
  EXPECT_FALSE(NameOfDLDataType(DLDataType{kDLInt, 4, 1}).has_value());
}

TEST(TensorTest, WrapAndAllocateCpu) {
  auto owner = std::make_shared<std::vector<char>>(100);
  Tensor w = Tensor::Wrap(owner->data() + 10, 50, Meta(0, "cuda:2"), owner);
  EXPECT_EQ(w.meta().nbytes(), 50u);
  EXPECT_EQ(w.device().device_type, kDLCUDA);
  EXPECT_EQ(w.device().device_id, 2);
  EXPECT_TRUE(w.Contains(owner->data() + 10));
  EXPECT_TRUE(w.Contains(owner->data() + 59));
  EXPECT_FALSE(w.Contains(owner->data() + 60));
  EXPECT_FALSE(w.Contains(owner->data() + 9));
  EXPECT_EQ(owner.use_count(), 2);

  CpuAllocator alloc(1 << 20);
  StatusOr<Tensor> a = Tensor::AllocateCpu(Meta(1000), alloc);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->nbytes(), 1000u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a->data()) % CpuAllocator::kAlignment, 0u);
  std::memset(a->data(), 7, a->nbytes());
  EXPECT_EQ(Tensor::AllocateCpu(Meta(8, "cuda:0"), alloc).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(TensorTest, ParseDevice) {
  EXPECT_EQ(ParseDevice("cpu")->device_type, kDLCPU);
  EXPECT_EQ(ParseDevice("")->device_type, kDLCPU);
  EXPECT_EQ(ParseDevice("cuda")->device_id, 0);
  EXPECT_EQ(ParseDevice("cuda:3")->device_id, 3);
  EXPECT_FALSE(ParseDevice("cuda:").ok());
  EXPECT_FALSE(ParseDevice("cuda:1x").ok());
  EXPECT_FALSE(ParseDevice("tpu").ok());
}

TEST(TensorTest, EmptyTensor) {
  Tensor t;
  EXPECT_EQ(t.data(), nullptr);
  EXPECT_EQ(t.nbytes(), 0u);
  EXPECT_EQ(t.meta().nbytes(), 0u);
  EXPECT_FALSE(t.Contains(nullptr));
  DLManagedTensor* out = t.ToDLPack();
  EXPECT_EQ(out->dl_tensor.shape[0], 0);
  out->deleter(out);
}

}  // namespace
}  // namespace ferry::tensor
