// Checks that cnnx's own test harness can fail: each MustFail.* test is
// registered with ctest as WILL_FAIL (CMakeLists.txt), MustPass.* must pass.
// A fatal assertion that did not leave its function would reach exit(0) and
// turn a MustFail run into a pass, which ctest then reports.
#include <gtest/gtest.h>

#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

::testing::AssertionResult is_even(int v) {
  if (v % 2 == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << v << " is odd";
}

void throws() { throw std::invalid_argument("bad"); }
void nothing() {}

}  // namespace

TEST(MustPass, EveryMacroOnTrueConditions) {
  EXPECT_TRUE(true);
  EXPECT_FALSE(false);
  EXPECT_TRUE(is_even(4));
  EXPECT_EQ(2 + 2, 4);
  EXPECT_EQ(std::vector<int>({1, 2}), std::vector<int>({1, 2}));
  EXPECT_NE(1, 2);
  EXPECT_LT(1, 2);
  EXPECT_LE(2, 2);
  EXPECT_GT(3, 2);
  EXPECT_GE(3, 3);
  EXPECT_NEAR(1.0, 1.05, 0.1);
  EXPECT_FLOAT_EQ(1.0f, 1.0f + 1e-7f);
  EXPECT_DOUBLE_EQ(0.1 + 0.2, 0.3);
  EXPECT_STREQ("ab", "ab");
  EXPECT_STRNE("ab", "ac");
  EXPECT_THROW(throws(), std::invalid_argument);
  EXPECT_THROW(throws(), std::exception);  // a base class matches
  EXPECT_NO_THROW(nothing());
  EXPECT_ANY_THROW(throws());
  SCOPED_TRACE("a trace");
  ASSERT_TRUE(true) << "message";
  ASSERT_EQ(1, 1);
  EXPECT_FALSE(::testing::Test::HasFailure());
}

TEST(MustPass, ElseBindsToTheUsersIf) {
  int branch = 0;
  if (false)
    EXPECT_TRUE(true);
  else
    branch = 1;
  EXPECT_EQ(branch, 1);
}

class Param : public ::testing::TestWithParam<std::string> {};

TEST_P(Param, SeesItsValue) { EXPECT_TRUE(GetParam() == "one" || GetParam() == "two"); }

INSTANTIATE_TEST_SUITE_P(Vals, Param, ::testing::ValuesIn(std::vector<std::string>{"one", "two"}),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param + "_" + std::to_string(info.index);
                         });

TEST(MustFail, ExpectTrue) { EXPECT_TRUE(1 == 2); }
TEST(MustFail, ExpectFalse) { EXPECT_FALSE(true); }
TEST(MustFail, AssertionResult) { EXPECT_TRUE(is_even(3)); }
TEST(MustFail, ExpectEq) { EXPECT_EQ(1, 2); }
TEST(MustFail, ExpectNe) { EXPECT_NE(2, 2); }
TEST(MustFail, ExpectLt) { EXPECT_LT(2, 2); }
TEST(MustFail, ExpectNear) { EXPECT_NEAR(1.0, 1.2, 0.1); }
TEST(MustFail, ExpectFloatEq) { EXPECT_FLOAT_EQ(1.0f, 1.0001f); }
TEST(MustFail, FloatEqNaN) { EXPECT_FLOAT_EQ(std::nanf(""), std::nanf("")); }
TEST(MustFail, ExpectStrne) { EXPECT_STRNE("ab", "ab"); }
TEST(MustFail, ExpectThrowNothing) { EXPECT_THROW(nothing(), std::invalid_argument); }
TEST(MustFail, ExpectThrowWrongType) { EXPECT_THROW(throws(), std::out_of_range); }
TEST(MustFail, ExpectNoThrow) { EXPECT_NO_THROW(throws()); }
TEST(MustFail, UncaughtException) { throws(); }
TEST(MustFail, AssertTrueLeaves) {
  ASSERT_TRUE(false);
  std::exit(0);
}
TEST(MustFail, AssertEqLeaves) {
  ASSERT_EQ(1, 2) << "context";
  std::exit(0);
}
TEST(MustFail, AssertNearLeaves) {
  ASSERT_NEAR(0.0, 1.0, 0.5);
  std::exit(0);
}
TEST(MustFail, AssertFloatEqLeaves) {
  ASSERT_FLOAT_EQ(1.0f, 2.0f);
  std::exit(0);
}
TEST(MustFail, HasFailureSeesIt) {
  EXPECT_EQ(1, 2);
  if (!::testing::Test::HasFailure()) std::exit(0);
}
