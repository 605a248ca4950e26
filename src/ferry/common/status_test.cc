#include "ferry/status.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

StatusOr<int> Half(int n) {
  if (n % 2 != 0) return Status::InvalidArgument("odd: " + std::to_string(n));
  return n / 2;
}

Status Quarter(int n, int* out) {
  FERRY_ASSIGN_OR_RETURN(int h, Half(n));
  FERRY_ASSIGN_OR_RETURN(*out, Half(h));
  return Status::Ok();
}

TEST(StatusTest, OkAndErrorRender) {
  EXPECT_EQ(Status::Ok().ToString(), "OK");
  EXPECT_EQ(Status::NotFound("no x").ToString(), "NOT_FOUND: no x");
  EXPECT_EQ(Status::Unavailable("gone").WithContext("get").message(), "get: gone");
  EXPECT_TRUE(Status::Ok().WithContext("ctx").ok());
}

TEST(StatusTest, AssignOrReturnPropagatesFirstError) {
  int out = 0;
  EXPECT_TRUE(Quarter(8, &out).ok());
  EXPECT_EQ(out, 2);
  Status s = Quarter(6, &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "odd: 3");
}

TEST(StatusDeathTest, ValueOfErrorAborts) {
  StatusOr<int> s = Status::Internal("boom");
  EXPECT_DEATH((void)s.value(), "boom");
}

}  // namespace
}  // namespace ferry
