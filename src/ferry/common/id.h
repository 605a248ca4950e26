// Typed identifiers: ObjectId, ActorId, WorkerId, TaskId, NodeId.
//
// Each is 16 random bytes behind a distinct type, so an ActorId cannot be
// passed where an ObjectId is expected. Values; thread-safe to copy. Random()
// is thread-safe (a per-thread generator seeded from the OS).
//
//   ObjectId id = ObjectId::Random();
//   std::string wire = id.Binary();           // 16 bytes, for protobuf
//   ObjectId back = ObjectId::FromBinary(wire).value();
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>

#include "ferry/status.h"

namespace ferry {

inline constexpr size_t kIdSize = 16;

// Fills `out` with random bytes from a per-thread generator.
void FillRandom(uint8_t* out, size_t n);

template <typename Tag>
class TypedId {
 public:
  TypedId() { bytes_.fill(0); }

  static TypedId Random() {
    TypedId id;
    FillRandom(id.bytes_.data(), kIdSize);
    return id;
  }
  static TypedId Nil() { return TypedId(); }
  static StatusOr<TypedId> FromBinary(std::string_view b) {
    if (b.size() != kIdSize) {
      return Status::InvalidArgument(std::string(Tag::kName) + " must be " +
                                     std::to_string(kIdSize) + " bytes, got " +
                                     std::to_string(b.size()));
    }
    TypedId id;
    std::memcpy(id.bytes_.data(), b.data(), kIdSize);
    return id;
  }
  // Parses the 32-character form made by Hex().
  static StatusOr<TypedId> FromHex(std::string_view h);

  bool IsNil() const { return *this == TypedId(); }
  std::string Binary() const {
    return std::string(reinterpret_cast<const char*>(bytes_.data()), kIdSize);
  }
  std::string Hex() const;
  const uint8_t* data() const { return bytes_.data(); }
  size_t Hash() const {
    uint64_t h;
    std::memcpy(&h, bytes_.data(), sizeof(h));
    return static_cast<size_t>(h);
  }

  bool operator==(const TypedId&) const = default;
  bool operator<(const TypedId& o) const { return bytes_ < o.bytes_; }

 private:
  std::array<uint8_t, kIdSize> bytes_;
};

std::string HexEncode(const uint8_t* data, size_t n);
Status HexDecode(std::string_view hex, uint8_t* out, size_t n);

template <typename Tag>
std::string TypedId<Tag>::Hex() const {
  return HexEncode(bytes_.data(), kIdSize);
}

template <typename Tag>
StatusOr<TypedId<Tag>> TypedId<Tag>::FromHex(std::string_view h) {
  TypedId id;
  FERRY_RETURN_IF_ERROR(HexDecode(h, id.bytes_.data(), kIdSize));
  return id;
}

struct ObjectIdTag {
  static constexpr const char* kName = "ObjectId";
};
struct ActorIdTag {
  static constexpr const char* kName = "ActorId";
};
struct WorkerIdTag {
  static constexpr const char* kName = "WorkerId";
};
struct TaskIdTag {
  static constexpr const char* kName = "TaskId";
};
struct NodeIdTag {
  static constexpr const char* kName = "NodeId";
};

using ObjectId = TypedId<ObjectIdTag>;
using ActorId = TypedId<ActorIdTag>;
using WorkerId = TypedId<WorkerIdTag>;
using TaskId = TypedId<TaskIdTag>;
using NodeId = TypedId<NodeIdTag>;

}  // namespace ferry

template <typename Tag>
struct std::hash<ferry::TypedId<Tag>> {
  size_t operator()(const ferry::TypedId<Tag>& id) const { return id.Hash(); }
};
