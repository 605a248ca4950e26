// Compiled only where the CUDA toolkit is installed: the signatures
// CudaRuntime and NcclLibrary bind (as ints for the error enums) must match
// the toolkit's headers, or this does not compile.
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <type_traits>

#include "ferry/tensor/cuda_runtime.h"
#include "ferry/transport/nccl/nccl_library.h"

namespace {

static_assert(sizeof(cudaError_t) == sizeof(int) && cudaSuccess == 0);
static_assert(sizeof(ncclResult_t) == sizeof(int) && ncclSuccess == 0);

// `Bound` (ferry's pointer type) calls what `Real` is, with the enums as int.
template <typename Bound, typename Real>
struct SameCall : std::false_type {};
template <typename R1, typename R2, typename... A>
struct SameCall<R1 (*)(A...), R2 (*)(A...)>
    : std::bool_constant<sizeof(R1) == sizeof(R2) &&
                         (std::is_same_v<R1, R2> || std::is_enum_v<R2>)> {};
template <typename R1, typename R2>
struct SameCall<R1 (*)(int), R2 (*)(cudaError_t)> : std::is_same<R1, R2> {};
template <typename R1, typename R2>
struct SameCall<R1 (*)(int), R2 (*)(ncclResult_t)> : std::is_same<R1, R2> {};

using ferry::tensor::CudaRuntime;
using ferry::transport::NcclLibrary;
static_assert(SameCall<decltype(CudaRuntime::GetDeviceCount), decltype(&cudaGetDeviceCount)>());
static_assert(SameCall<decltype(CudaRuntime::DriverGetVersion), decltype(&cudaDriverGetVersion)>());
static_assert(
    SameCall<decltype(CudaRuntime::RuntimeGetVersion), decltype(&cudaRuntimeGetVersion)>());
static_assert(SameCall<decltype(CudaRuntime::GetErrorString), decltype(&cudaGetErrorString)>());
static_assert(SameCall<decltype(NcclLibrary::GetVersion), decltype(&ncclGetVersion)>());
static_assert(SameCall<decltype(NcclLibrary::GetErrorString), decltype(&ncclGetErrorString)>());

}  // namespace
