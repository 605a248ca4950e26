#include "ferry/common/dynamic_library.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

TEST(DynamicLibraryTest, OpensTheFirstNameThatLoadsAndBindsItsSymbols) {
  auto lib = DynamicLibrary::Open({"libferry-no-such-library.so", "libm.so.6"});
  ASSERT_TRUE(lib.ok()) << lib.status();
  EXPECT_NE((*lib)->path().find("libm.so.6"), std::string::npos) << (*lib)->path();
  double (*cosine)(double) = nullptr;
  ASSERT_TRUE((*lib)->Bind("cos", &cosine).ok());
  EXPECT_DOUBLE_EQ(cosine(0.0), 1.0);
}

TEST(DynamicLibraryTest, AMissingLibraryOrSymbolIsNotFoundWithEveryReason) {
  auto missing = DynamicLibrary::Open({"libferry-missing-a.so", "/nonexistent/libb.so"});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("libferry-missing-a.so:"), std::string::npos);
  EXPECT_NE(missing.status().message().find("/nonexistent/libb.so:"), std::string::npos);

  auto lib = DynamicLibrary::Open({"libm.so.6"});
  ASSERT_TRUE(lib.ok());
  void (*none)() = nullptr;
  Status s = (*lib)->Bind("ferry_no_such_symbol", &none);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(none, nullptr);
  EXPECT_EQ(DynamicLibrary::Open({}).status().code(), StatusCode::kInvalidArgument);
}

TEST(DynamicLibraryTest, AnEnvironmentVariableNamesAnotherFile) {
  ::setenv("FERRY_TEST_LIBRARY", "libm.so.6", 1);
  auto configured = DynamicLibrary::OpenConfigured("FERRY_TEST_LIBRARY", {"libferry-default.so"});
  ASSERT_TRUE(configured.ok()) << configured.status();
  EXPECT_NE((*configured)->path().find("libm.so.6"), std::string::npos);
  ::setenv("FERRY_TEST_LIBRARY", "", 1);  // empty: the defaults
  auto defaults = DynamicLibrary::OpenConfigured("FERRY_TEST_LIBRARY", {"libferry-default.so"});
  ASSERT_FALSE(defaults.ok());
  EXPECT_NE(defaults.status().message().find("libferry-default.so"), std::string::npos);
  ::unsetenv("FERRY_TEST_LIBRARY");
}

}  // namespace
}  // namespace ferry
