#include "ferry/object/copy_bytes.h"

#include <cstring>

#include "ferry/common/stream_copy.h"

namespace ferry::object {

void CopyBytes(void* dst, const void* src, size_t n) {
  if (n >= kStreamingCopyThreshold) {
    StreamCopy(dst, src, n);
    return;
  }
  if (n > 0) std::memcpy(dst, src, n);
}

}  // namespace ferry::object
