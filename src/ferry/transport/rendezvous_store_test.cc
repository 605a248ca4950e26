#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <thread>

#include "ferry/transport/file_rendezvous_store.h"
#include "ferry/transport/in_memory_rendezvous_store.h"

namespace ferry::transport {
namespace {

using std::chrono::milliseconds;

void CheckStore(RendezvousStore& store) {
  auto missing = store.Get("absent", Deadline::After(milliseconds(50)));
  EXPECT_EQ(missing.status().code(), StatusCode::kDeadlineExceeded);

  // A Get that starts before the Set returns the value once it lands.
  std::thread setter([&] { ASSERT_TRUE(store.Set("k/1", std::string("v\0x", 3)).ok()); });
  auto v = store.Get("k/1", Deadline::After(std::chrono::seconds(10)));
  setter.join();
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, std::string("v\0x", 3));

  ASSERT_TRUE(store.Set("k/1", "w").ok());
  EXPECT_EQ(*store.Get("k/1", Deadline::Never()), "w");
  ASSERT_TRUE(store.Set("odd key/../\xff", "").ok());
  EXPECT_EQ(*store.Get("odd key/../\xff", Deadline::Never()), "");
}

TEST(InMemoryRendezvousStoreTest, SetGetWait) {
  InMemoryRendezvousStore store;
  CheckStore(store);
}

TEST(FileRendezvousStoreTest, SetGetWait) {
  char tmpl[] = "/tmp/ferry-store-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  {
    FileRendezvousStore store(tmpl);
    CheckStore(store);
    // A second instance over the same directory sees the same keys.
    EXPECT_EQ(*FileRendezvousStore(tmpl).Get("k/1", Deadline::Never()), "w");
  }
  std::filesystem::remove_all(tmpl);
}

}  // namespace
}  // namespace ferry::transport
