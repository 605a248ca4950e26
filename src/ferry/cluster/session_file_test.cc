#include "ferry/cluster/session_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "ferry/cluster/private_dir.h"

namespace ferry::cluster {
namespace {

namespace fs = std::filesystem;

class SessionFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("ferry-session-test-" + std::to_string(getpid()));
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  static std::string Read(const fs::path& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  static int Mode(const fs::path& path) {
    struct stat st;
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return st.st_mode & 07777;
  }

  fs::path root_;
};

TEST_F(SessionFileTest, WritesAPrivateFileAndPointsLatestAtItThenRemovesBoth) {
  const std::string temp = (root_ / "ferry").string();
  ASSERT_TRUE(
      WriteSessionFile(
          temp, {.session = "abc", .address = "unix:@ferry-abc-1", .token = "t\"ok", .pid = 42})
          .ok());
  fs::path file = fs::path(temp) / "session-abc" / "session.json";
  EXPECT_EQ(Read(file),
            "{\"session\": \"abc\", \"address\": \"unix:@ferry-abc-1\", \"token\": \"t\\\"ok\", "
            "\"pid\": 42}\n");
  EXPECT_EQ(Mode(file), 0600);
  EXPECT_EQ(Mode(file.parent_path()), 0700);
  EXPECT_EQ(fs::read_symlink(fs::path(temp) / "session_latest"), "session-abc");

  // A newer session takes session_latest; removing the older leaves it.
  ASSERT_TRUE(
      WriteSessionFile(temp, {.session = "def", .address = "a", .token = "t", .pid = 43}).ok());
  RemoveSessionFile(temp, "abc");
  EXPECT_FALSE(fs::exists(file));
  EXPECT_EQ(fs::read_symlink(fs::path(temp) / "session_latest"), "session-def");
  RemoveSessionFile(temp, "def");
  EXPECT_FALSE(fs::exists(fs::symlink_status(fs::path(temp) / "session_latest")));
}

TEST_F(SessionFileTest, ADirectoryOthersCanWriteIsRefused) {
  fs::create_directories(root_ / "open");
  ::chmod((root_ / "open").c_str(), 0777);
  Status s = MakePrivateDir((root_ / "open" / "logs").string());
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(s.message().find("others can write to"), std::string::npos) << s;
  // Sticky, as /tmp: fine above a directory of ours.
  ::chmod((root_ / "open").c_str(), 01777);
  EXPECT_TRUE(MakePrivateDir((root_ / "open" / "logs").string()).ok());
  EXPECT_EQ(Mode(root_ / "open" / "logs"), 0700);
  // but not as the directory itself, nor a symlink on the way.
  EXPECT_FALSE(MakePrivateDir((root_ / "open").string()).ok());
  fs::create_directory_symlink(root_ / "open", root_ / "link");
  EXPECT_EQ(MakePrivateDir((root_ / "link" / "logs").string()).code(),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(MakePrivateDir("relative/dir").code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ferry::cluster
