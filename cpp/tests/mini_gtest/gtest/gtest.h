// cnnx's own small test harness: the subset of GoogleTest's API that
// cpp/tests/ uses, so the C++ tests build and run on a machine without
// GoogleTest (CMake picks it when find_package(GTest) fails, or when
// -DCNNX_OWN_TEST_HARNESS=ON forces it). Written for cnnx, not derived from
// GoogleTest's sources; it follows GoogleTest's documented behaviour:
//
//   TEST(Suite, Name), TEST_P(Fixture, Name) with ::testing::TestWithParam<T>,
//   GetParam(), INSTANTIATE_TEST_SUITE_P(Prefix, Fixture, ::testing::ValuesIn(c)
//   [, name_function(const ::testing::TestParamInfo<T>&)]);
//   EXPECT_/ASSERT_ TRUE FALSE EQ NE LT LE GT GE NEAR FLOAT_EQ DOUBLE_EQ STREQ
//   STRNE THROW NO_THROW ANY_THROW, each taking `<< message`;
//   ::testing::AssertionResult / AssertionSuccess() / AssertionFailure() << ...;
//   SCOPED_TRACE(message); ::testing::Test::HasFailure() / HasFatalFailure().
//
// ASSERT_* returns from the current (void) function, as in GoogleTest. The
// main() in gtest_main.cpp understands --gtest_list_tests (GoogleTest's
// format, so CMake's gtest_discover_tests registers one ctest test per test)
// and --gtest_filter=PATTERNS[-NEGATIVE] with * and ? wildcards.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace testing {

// ---- messages and assertion results -----------------------------------------

namespace internal {

template <class T, class = void>
struct Streamable : std::false_type {};
template <class T>
struct Streamable<T,
                  std::void_t<decltype(std::declval<std::ostream&>() << std::declval<const T&>())>>
    : std::true_type {};

template <class T>
void print_value(std::ostream& os, const T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    os << (v ? "true" : "false");
  } else if constexpr (std::is_enum_v<T>) {
    os << static_cast<long long>(v);
  } else if constexpr (std::is_same_v<T, unsigned char> || std::is_same_v<T, signed char>) {
    os << static_cast<int>(v);
  } else if constexpr (Streamable<T>::value) {
    os << v;
  } else {
    os << "<" << sizeof(T) << "-byte object>";
  }
}

template <class T>
std::string show(const T& v) {
  std::ostringstream os;
  os.precision(std::numeric_limits<double>::max_digits10);
  print_value(os, v);
  return os.str();
}

}  // namespace internal

class Message {
 public:
  template <class T>
  Message& operator<<(const T& v) {
    internal::print_value(os_, v);
    return *this;
  }
  Message& operator<<(const char* s) {
    os_ << (s ? s : "(null)");
    return *this;
  }
  std::string str() const { return os_.str(); }

 private:
  std::ostringstream os_;
};

class AssertionResult {
 public:
  explicit AssertionResult(bool ok) : ok_(ok) {}
  AssertionResult(const AssertionResult& o) : ok_(o.ok_), msg_(o.msg_) {}
  AssertionResult& operator=(const AssertionResult& o) {
    ok_ = o.ok_;
    msg_ = o.msg_;
    return *this;
  }
  explicit operator bool() const { return ok_; }
  const char* message() const { return msg_.c_str(); }
  template <class T>
  AssertionResult& operator<<(const T& v) {
    Message m;
    m << v;
    msg_ += m.str();
    return *this;
  }

 private:
  bool ok_;
  std::string msg_;
};

inline AssertionResult AssertionSuccess() { return AssertionResult(true); }
inline AssertionResult AssertionFailure() { return AssertionResult(false); }

// ---- tests ----------------------------------------------------------------------

class Test {
 public:
  virtual ~Test() = default;
  virtual void SetUp() {}
  virtual void TearDown() {}
  virtual void TestBody() = 0;
  static bool HasFailure();
  static bool HasFatalFailure();
};

template <class T>
struct TestParamInfo {
  TestParamInfo(const T& p, size_t i) : param(p), index(i) {}
  T param;
  size_t index;
};

template <class T>
class TestWithParam : public Test {
 public:
  using ParamType = T;
  static const T& GetParam() { return *current(); }
  static const T*& current() {  // the value of the running instantiation
    static const T* p = nullptr;
    return p;
  }
};

template <class Container>
std::vector<typename Container::value_type> ValuesIn(const Container& c) {
  return std::vector<typename Container::value_type>(c.begin(), c.end());
}

namespace internal {

struct TestInfo {
  std::string suite, name;
  std::function<void()> run;  // constructs the test object, SetUp, TestBody, TearDown
};

std::vector<TestInfo>& registry();

// Failure bookkeeping for the running test (gtest_main.cpp).
void report_failure(const char* file, int line, const std::string& message, bool fatal);
void push_trace(const char* file, int line, const std::string& message);
void pop_trace();

inline void run_fixture(Test* t) {
  t->SetUp();
  if (!Test::HasFatalFailure()) t->TestBody();
  t->TearDown();
}

struct Registrar {
  Registrar(const char* suite, const char* name, std::function<void()> run) {
    registry().push_back({suite, name, std::move(run)});
  }
};

// TEST_P patterns and INSTANTIATE_TEST_SUITE_P instantiations are matched in
// main() (expand_parameterized), whatever their order of static initialisation.
struct ParamSuite {
  std::vector<std::pair<std::string, std::function<void()>>> patterns;  // name, run
  struct Inst {
    std::string prefix;
    std::function<size_t()> count;            // number of values (generated on first use)
    std::function<std::string(size_t)> name;  // test-name suffix of value i
    std::function<void(size_t)> bind;         // makes value i GetParam()'s
  };
  std::vector<Inst> insts;
};

std::vector<std::pair<std::string, ParamSuite*>>& param_suites();

template <class Fixture>
ParamSuite& param_suite(const char* name) {
  static ParamSuite* s = [name] {
    auto* p = new ParamSuite();
    param_suites().emplace_back(name, p);
    return p;
  }();
  return *s;
}

template <class Fixture, class TestClass>
struct ParamPatternRegistrar {
  ParamPatternRegistrar(const char* fixture, const char* name) {
    param_suite<Fixture>(fixture).patterns.emplace_back(name, [] {
      TestClass t;
      run_fixture(&t);
    });
  }
};

template <class Fixture, class P, class NameFn>
int instantiate(const char* prefix, const char* fixture, std::function<std::vector<P>()> gen,
                NameFn name_fn) {
  auto values = std::make_shared<std::vector<P>>();
  auto ready = std::make_shared<bool>(false);
  auto get = [gen, values, ready]() -> std::vector<P>& {
    if (!*ready) {
      *values = gen();
      *ready = true;
    }
    return *values;
  };
  ParamSuite& s = param_suite<Fixture>(fixture);
  ParamSuite::Inst inst;
  inst.prefix = prefix;
  inst.count = [get]() { return get().size(); };
  inst.name = [get, name_fn](size_t i) {
    return std::string(name_fn(TestParamInfo<P>(get()[i], i)));
  };
  inst.bind = [get](size_t i) { Fixture::current() = &get()[i]; };
  s.insts.push_back(inst);
  return 0;
}

template <class P>
struct DefaultParamName {
  std::string operator()(const TestParamInfo<P>& info) const { return std::to_string(info.index); }
};

// ---- comparisons -------------------------------------------------------------------

template <class A, class B>
AssertionResult compare(const char* op, bool ok, const char* ea, const char* eb, const A& a,
                        const B& b) {
  if (ok) return AssertionSuccess();
  return AssertionFailure() << "Expected: (" << ea << ") " << op << " (" << eb
                            << "), actual: " << show(a) << " vs " << show(b);
}

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#endif
template <class A, class B>
AssertionResult cmp_eq(const char* ea, const char* eb, const A& a, const B& b) {
  return compare("==", a == b, ea, eb, a, b);
}
template <class A, class B>
AssertionResult cmp_ne(const char* ea, const char* eb, const A& a, const B& b) {
  return compare("!=", a != b, ea, eb, a, b);
}
template <class A, class B>
AssertionResult cmp_lt(const char* ea, const char* eb, const A& a, const B& b) {
  return compare("<", a < b, ea, eb, a, b);
}
template <class A, class B>
AssertionResult cmp_le(const char* ea, const char* eb, const A& a, const B& b) {
  return compare("<=", a <= b, ea, eb, a, b);
}
template <class A, class B>
AssertionResult cmp_gt(const char* ea, const char* eb, const A& a, const B& b) {
  return compare(">", a > b, ea, eb, a, b);
}
template <class A, class B>
AssertionResult cmp_ge(const char* ea, const char* eb, const A& a, const B& b) {
  return compare(">=", a >= b, ea, eb, a, b);
}
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

inline AssertionResult cmp_bool(const char* e, bool value, bool expected) {
  if (value == expected) return AssertionSuccess();
  return AssertionFailure() << "Value of: " << e << "\n  Actual: " << (value ? "true" : "false")
                            << "\nExpected: " << (expected ? "true" : "false");
}
inline AssertionResult cmp_bool(const char* e, const AssertionResult& r, bool expected) {
  if (static_cast<bool>(r) == expected) return AssertionSuccess();
  return AssertionFailure() << "Value of: " << e
                            << "\n  Actual: " << (static_cast<bool>(r) ? "true" : "false") << " ("
                            << r.message() << ")\nExpected: " << (expected ? "true" : "false");
}

inline AssertionResult cmp_near(const char* ea, const char* eb, const char* et, double a, double b,
                                double tol) {
  const double d = std::fabs(a - b);
  if (d <= tol) return AssertionSuccess();
  return AssertionFailure() << "The difference between " << ea << " and " << eb << " is " << d
                            << ", which exceeds " << et << ", where " << ea << " evaluates to " << a
                            << ", " << eb << " evaluates to " << b << ", and " << et
                            << " evaluates to " << tol << ".";
}

// Equal within 4 units in the last place (GoogleTest's FLOAT_EQ / DOUBLE_EQ rule).
template <class F, class U>
bool almost_equal_ulps(F a, F b) {
  if (std::isnan(a) || std::isnan(b)) return false;
  auto biased = [](F x) {
    U u;
    std::memcpy(&u, &x, sizeof u);
    const U sign = U(1) << (8 * sizeof(U) - 1);
    return (u & sign) ? ~u + 1 : (u | sign);  // sign-magnitude -> biased ordering
  };
  const U ba = biased(a), bb = biased(b);
  return (ba >= bb ? ba - bb : bb - ba) <= 4;
}

template <class F>
AssertionResult cmp_fp_eq(const char* ea, const char* eb, F a, F b) {
  using U = std::conditional_t<sizeof(F) == 4, uint32_t, uint64_t>;
  if (almost_equal_ulps<F, U>(a, b)) return AssertionSuccess();
  return AssertionFailure() << "Expected equality (within 4 ULPs) of " << ea << " = " << show(a)
                            << " and " << eb << " = " << show(b);
}

inline AssertionResult cmp_str(const char* ea, const char* eb, const char* a, const char* b,
                               bool equal) {
  const bool same = (a == nullptr || b == nullptr) ? a == b : std::strcmp(a, b) == 0;
  if (same == equal) return AssertionSuccess();
  return AssertionFailure() << "Expected: (" << ea << ") " << (equal ? "==" : "!=") << " (" << eb
                            << "), actual: \"" << (a ? a : "(null)") << "\" vs \""
                            << (b ? b : "(null)") << "\"";
}

// Records a failure when assigned a Message (the `<< ...` part of an assertion).
class AssertHelper {
 public:
  AssertHelper(const char* file, int line, std::string summary, bool fatal)
      : file_(file), line_(line), summary_(std::move(summary)), fatal_(fatal) {}
  void operator=(const Message& m) const {
    std::string text = summary_;
    const std::string extra = m.str();
    if (!extra.empty()) text += "\n" + extra;
    report_failure(file_, line_, text, fatal_);
  }

 private:
  const char* file_;
  int line_;
  std::string summary_;
  bool fatal_;
};

class ScopedTrace {
 public:
  template <class T>
  ScopedTrace(const char* file, int line, const T& message) {
    Message m;
    m << message;
    push_trace(file, line, m.str());
  }
  ~ScopedTrace() { pop_trace(); }
  ScopedTrace(const ScopedTrace&) = delete;
  ScopedTrace& operator=(const ScopedTrace&) = delete;
};

}  // namespace internal
}  // namespace testing

// ---- macros --------------------------------------------------------------------------

#define MINI_GTEST_CAT_(a, b) a##b
#define MINI_GTEST_CAT(a, b) MINI_GTEST_CAT_(a, b)
#define MINI_GTEST_CLASS_(suite, name) suite##_##name##_Test

// `switch (0) case 0: default:` keeps a following `else` from binding to the
// macro's hidden `if` (GoogleTest's ambiguous-else blocker).
#define MINI_GTEST_CHECK_(result_expr, fatal, on_failure)                                       \
  switch (0)                                                                                    \
  case 0:                                                                                       \
  default:                                                                                      \
    if (const ::testing::AssertionResult mini_gtest_ar_ = (result_expr))                        \
      ;                                                                                         \
    else                                                                                        \
      on_failure::testing::internal::AssertHelper(__FILE__, __LINE__, mini_gtest_ar_.message(), \
                                                  fatal) = ::testing::Message()

#define MINI_GTEST_NONFATAL_(result_expr) MINI_GTEST_CHECK_(result_expr, false, )
// ASSERT_*: `return` a void expression, leaving the current (void) function
#define MINI_GTEST_FATAL_(result_expr) MINI_GTEST_CHECK_(result_expr, true, return)

#define EXPECT_TRUE(c) MINI_GTEST_NONFATAL_(::testing::internal::cmp_bool(#c, (c), true))
#define EXPECT_FALSE(c) MINI_GTEST_NONFATAL_(::testing::internal::cmp_bool(#c, (c), false))
#define ASSERT_TRUE(c) MINI_GTEST_FATAL_(::testing::internal::cmp_bool(#c, (c), true))
#define ASSERT_FALSE(c) MINI_GTEST_FATAL_(::testing::internal::cmp_bool(#c, (c), false))

#define MINI_GTEST_CMP_(kind, a, b) ::testing::internal::cmp_##kind(#a, #b, (a), (b))
#define EXPECT_EQ(a, b) MINI_GTEST_NONFATAL_(MINI_GTEST_CMP_(eq, a, b))
#define EXPECT_NE(a, b) MINI_GTEST_NONFATAL_(MINI_GTEST_CMP_(ne, a, b))
#define EXPECT_LT(a, b) MINI_GTEST_NONFATAL_(MINI_GTEST_CMP_(lt, a, b))
#define EXPECT_LE(a, b) MINI_GTEST_NONFATAL_(MINI_GTEST_CMP_(le, a, b))
#define EXPECT_GT(a, b) MINI_GTEST_NONFATAL_(MINI_GTEST_CMP_(gt, a, b))
#define EXPECT_GE(a, b) MINI_GTEST_NONFATAL_(MINI_GTEST_CMP_(ge, a, b))
#define ASSERT_EQ(a, b) MINI_GTEST_FATAL_(MINI_GTEST_CMP_(eq, a, b))
#define ASSERT_NE(a, b) MINI_GTEST_FATAL_(MINI_GTEST_CMP_(ne, a, b))
#define ASSERT_LT(a, b) MINI_GTEST_FATAL_(MINI_GTEST_CMP_(lt, a, b))
#define ASSERT_LE(a, b) MINI_GTEST_FATAL_(MINI_GTEST_CMP_(le, a, b))
#define ASSERT_GT(a, b) MINI_GTEST_FATAL_(MINI_GTEST_CMP_(gt, a, b))
#define ASSERT_GE(a, b) MINI_GTEST_FATAL_(MINI_GTEST_CMP_(ge, a, b))

#define EXPECT_NEAR(a, b, tol) \
  MINI_GTEST_NONFATAL_(::testing::internal::cmp_near(#a, #b, #tol, (a), (b), (tol)))
#define ASSERT_NEAR(a, b, tol) \
  MINI_GTEST_FATAL_(::testing::internal::cmp_near(#a, #b, #tol, (a), (b), (tol)))
#define EXPECT_FLOAT_EQ(a, b) \
  MINI_GTEST_NONFATAL_(::testing::internal::cmp_fp_eq<float>(#a, #b, (a), (b)))
#define ASSERT_FLOAT_EQ(a, b) \
  MINI_GTEST_FATAL_(::testing::internal::cmp_fp_eq<float>(#a, #b, (a), (b)))
#define EXPECT_DOUBLE_EQ(a, b) \
  MINI_GTEST_NONFATAL_(::testing::internal::cmp_fp_eq<double>(#a, #b, (a), (b)))
#define ASSERT_DOUBLE_EQ(a, b) \
  MINI_GTEST_FATAL_(::testing::internal::cmp_fp_eq<double>(#a, #b, (a), (b)))
#define EXPECT_STREQ(a, b) \
  MINI_GTEST_NONFATAL_(::testing::internal::cmp_str(#a, #b, (a), (b), true))
#define EXPECT_STRNE(a, b) \
  MINI_GTEST_NONFATAL_(::testing::internal::cmp_str(#a, #b, (a), (b), false))
#define ASSERT_STREQ(a, b) MINI_GTEST_FATAL_(::testing::internal::cmp_str(#a, #b, (a), (b), true))
#define ASSERT_STRNE(a, b) MINI_GTEST_FATAL_(::testing::internal::cmp_str(#a, #b, (a), (b), false))

// Exceptions: the statement runs inside a lambda; the lambda reports what happened.
#define MINI_GTEST_THROW_RESULT_(statement, exc)                             \
  ([&]() -> ::testing::AssertionResult {                                     \
    try {                                                                    \
      statement;                                                             \
    } catch (const exc&) {                                                   \
      return ::testing::AssertionSuccess();                                  \
    } catch (...) {                                                          \
      return ::testing::AssertionFailure()                                   \
             << "Expected: " #statement " throws an exception of type " #exc \
                ".\n  Actual: it throws a different type.";                  \
    }                                                                        \
    return ::testing::AssertionFailure()                                     \
           << "Expected: " #statement " throws an exception of type " #exc   \
              ".\n  Actual: it throws nothing.";                             \
  }())
#define MINI_GTEST_NO_THROW_RESULT_(statement)                                              \
  ([&]() -> ::testing::AssertionResult {                                                    \
    try {                                                                                   \
      statement;                                                                            \
    } catch (const std::exception& e) {                                                     \
      return ::testing::AssertionFailure() << "Expected: " #statement                       \
                                              " doesn't throw an exception.\n  Actual: it " \
                                              "throws: "                                    \
                                           << e.what();                                     \
    } catch (...) {                                                                         \
      return ::testing::AssertionFailure() << "Expected: " #statement                       \
                                              " doesn't throw an exception.\n  Actual: it " \
                                              "throws.";                                    \
    }                                                                                       \
    return ::testing::AssertionSuccess();                                                   \
  }())
#define MINI_GTEST_ANY_THROW_RESULT_(statement)                                       \
  ([&]() -> ::testing::AssertionResult {                                              \
    try {                                                                             \
      statement;                                                                      \
    } catch (...) {                                                                   \
      return ::testing::AssertionSuccess();                                           \
    }                                                                                 \
    return ::testing::AssertionFailure()                                              \
           << "Expected: " #statement " throws an exception.\n  Actual: it doesn't."; \
  }())
#define EXPECT_THROW(statement, exc) MINI_GTEST_NONFATAL_(MINI_GTEST_THROW_RESULT_(statement, exc))
#define ASSERT_THROW(statement, exc) MINI_GTEST_FATAL_(MINI_GTEST_THROW_RESULT_(statement, exc))
#define EXPECT_NO_THROW(statement) MINI_GTEST_NONFATAL_(MINI_GTEST_NO_THROW_RESULT_(statement))
#define ASSERT_NO_THROW(statement) MINI_GTEST_FATAL_(MINI_GTEST_NO_THROW_RESULT_(statement))
#define EXPECT_ANY_THROW(statement) MINI_GTEST_NONFATAL_(MINI_GTEST_ANY_THROW_RESULT_(statement))
#define ASSERT_ANY_THROW(statement) MINI_GTEST_FATAL_(MINI_GTEST_ANY_THROW_RESULT_(statement))

#define SCOPED_TRACE(message)                                                         \
  const ::testing::internal::ScopedTrace MINI_GTEST_CAT(mini_gtest_trace_, __LINE__)( \
      __FILE__, __LINE__, (message))

#define TEST(suite, name)                                                  \
  class MINI_GTEST_CLASS_(suite, name) : public ::testing::Test {          \
   public:                                                                 \
    void TestBody() override;                                              \
  };                                                                       \
  static const ::testing::internal::Registrar MINI_GTEST_CAT(              \
      mini_gtest_reg_, MINI_GTEST_CLASS_(suite, name))(#suite, #name, [] { \
    MINI_GTEST_CLASS_(suite, name) t;                                      \
    ::testing::internal::run_fixture(&t);                                  \
  });                                                                      \
  void MINI_GTEST_CLASS_(suite, name)::TestBody()

#define TEST_P(fixture, name)                                                               \
  class MINI_GTEST_CLASS_(fixture, name) : public fixture {                                 \
   public:                                                                                  \
    void TestBody() override;                                                               \
  };                                                                                        \
  static const ::testing::internal::ParamPatternRegistrar<fixture,                          \
                                                          MINI_GTEST_CLASS_(fixture, name)> \
      MINI_GTEST_CAT(mini_gtest_preg_, MINI_GTEST_CLASS_(fixture, name))(#fixture, #name);  \
  void MINI_GTEST_CLASS_(fixture, name)::TestBody()

#define MINI_GTEST_NAME_FN_(fixture, ...) \
  ::testing::internal::pick_name_fn<typename fixture::ParamType>(__VA_ARGS__)

namespace testing {
namespace internal {
template <class P>
DefaultParamName<P> pick_name_fn() {
  return {};
}
template <class P, class F>
F pick_name_fn(F f) {
  return f;
}
}  // namespace internal
}  // namespace testing

#define INSTANTIATE_TEST_SUITE_P(prefix, fixture, generator, ...)                           \
  static const int MINI_GTEST_CAT(mini_gtest_inst_, MINI_GTEST_CAT(prefix, fixture)) =      \
      ::testing::internal::instantiate<fixture, typename fixture::ParamType>(               \
          #prefix, #fixture, std::function<std::vector<typename fixture::ParamType>()>([] { \
            return std::vector<typename fixture::ParamType>(generator);                     \
          }),                                                                               \
          MINI_GTEST_NAME_FN_(fixture, ##__VA_ARGS__))
