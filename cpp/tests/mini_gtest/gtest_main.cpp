// main() of cnnx's own test harness (see gtest/gtest.h): runs the registered
// tests, prints GoogleTest-style lines, exits 1 if any test failed.
//
//   cnnx_tests                          run every test
//   cnnx_tests --gtest_filter=A.*:B.c   only these (`*`, `?`; `-` starts exclusions)
//   cnnx_tests --gtest_list_tests       list them (CMake's gtest_discover_tests reads this)
// Other --gtest_* flags are accepted and ignored.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace testing {
namespace internal {

std::vector<TestInfo>& registry() {
  static std::vector<TestInfo> r;
  return r;
}

std::vector<std::pair<std::string, ParamSuite*>>& param_suites() {
  static std::vector<std::pair<std::string, ParamSuite*>> s;
  return s;
}

namespace {

std::mutex g_mutex;  // assertions may fail on several threads at once
bool g_failed = false;
bool g_fatal = false;
std::vector<std::string> g_traces;  // SCOPED_TRACE stack of the test's main thread

bool glob_match(const char* pat, const char* s) {
  if (*pat == '\0') return *s == '\0';
  if (*pat == '*') return glob_match(pat + 1, s) || (*s && glob_match(pat, s + 1));
  if (*s && (*pat == '?' || *pat == *s)) return glob_match(pat + 1, s + 1);
  return false;
}

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t end = text.find(sep, start);
    out.push_back(text.substr(start, end - start));
    if (end == std::string::npos) return out;
    start = end + 1;
  }
}

bool any_match(const std::vector<std::string>& patterns, const std::string& name) {
  for (const auto& p : patterns)
    if (!p.empty() && glob_match(p.c_str(), name.c_str())) return true;
  return false;
}

// TEST_P patterns x INSTANTIATE_TEST_SUITE_P values -> ordinary tests named
// Prefix/Fixture.Pattern/ValueName, as GoogleTest names them.
void expand_parameterized() {
  for (auto& [fixture, suite] : param_suites()) {
    for (const auto& inst : suite->insts) {
      const size_t n = inst.count();
      for (const auto& [pattern, run] : suite->patterns) {
        for (size_t i = 0; i < n; ++i) {
          auto bind = inst.bind;
          auto body = run;
          registry().push_back(
              {inst.prefix + "/" + fixture, pattern + "/" + inst.name(i), [bind, body, i] {
                 bind(i);
                 body();
               }});
        }
      }
    }
  }
}

}  // namespace

void report_failure(const char* file, int line, const std::string& message, bool fatal) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_failed = true;
  g_fatal = g_fatal || fatal;
  std::string text =
      std::string(file) + ":" + std::to_string(line) + ": Failure\n" + message + "\n";
  if (!g_traces.empty()) {
    text += "Google Test trace:\n";
    for (auto it = g_traces.rbegin(); it != g_traces.rend(); ++it) text += *it + "\n";
  }
  std::fputs(text.c_str(), stdout);
  std::fflush(stdout);
}

void push_trace(const char* file, int line, const std::string& message) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_traces.push_back(std::string(file) + ":" + std::to_string(line) + ": " + message);
}

void pop_trace() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!g_traces.empty()) g_traces.pop_back();
}

}  // namespace internal

bool Test::HasFailure() {
  std::lock_guard<std::mutex> lock(internal::g_mutex);
  return internal::g_failed;
}

bool Test::HasFatalFailure() {
  std::lock_guard<std::mutex> lock(internal::g_mutex);
  return internal::g_fatal;
}

}  // namespace testing

int main(int argc, char** argv) {
  using namespace testing::internal;
  expand_parameterized();
  bool list = false;
  std::vector<std::string> positive{"*"}, negative;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--gtest_list_tests") {
      list = true;
    } else if (a.rfind("--gtest_filter=", 0) == 0) {
      const std::string f = a.substr(std::strlen("--gtest_filter="));
      const size_t dash = f.find('-');
      positive = split(f.substr(0, dash), ':');
      if (dash == 0 || positive.empty() || (positive.size() == 1 && positive[0].empty()))
        positive = {"*"};
      negative =
          dash == std::string::npos ? std::vector<std::string>{} : split(f.substr(dash + 1), ':');
    } else if (a.rfind("--gtest_", 0) == 0) {
      // accepted and ignored (e.g. --gtest_also_run_disabled_tests from ctest)
    } else {
      std::fprintf(stderr, "unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  std::vector<const TestInfo*> selected;
  for (const auto& t : registry()) {
    const std::string full = t.suite + "." + t.name;
    if (any_match(positive, full) && !any_match(negative, full)) selected.push_back(&t);
  }
  if (list) {  // GoogleTest's format: "Suite." then "  Name" lines
    std::string suite;
    for (const auto* t : selected) {
      if (t->suite != suite) {
        suite = t->suite;
        std::printf("%s.\n", suite.c_str());
      }
      std::printf("  %s\n", t->name.c_str());
    }
    return 0;
  }
  std::printf("[==========] Running %zu tests (cnnx's own test harness).\n", selected.size());
  std::vector<std::string> failed;
  const auto t_all = std::chrono::steady_clock::now();
  for (const auto* t : selected) {
    const std::string full = t->suite + "." + t->name;
    std::printf("[ RUN      ] %s\n", full.c_str());
    std::fflush(stdout);
    {
      std::lock_guard<std::mutex> lock(g_mutex);
      g_failed = g_fatal = false;
      g_traces.clear();
    }
    const auto t0 = std::chrono::steady_clock::now();
    try {
      t->run();
    } catch (const std::exception& e) {
      report_failure(__FILE__, __LINE__, std::string("uncaught exception: ") + e.what(), true);
    } catch (...) {
      report_failure(__FILE__, __LINE__, "uncaught exception of unknown type", true);
    }
    const long long ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    if (testing::Test::HasFailure()) {
      failed.push_back(full);
      std::printf("[  FAILED  ] %s (%lld ms)\n", full.c_str(), ms);
    } else {
      std::printf("[       OK ] %s (%lld ms)\n", full.c_str(), ms);
    }
    std::fflush(stdout);
  }
  const long long total = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now() - t_all)
                              .count();
  std::printf("[==========] %zu tests ran. (%lld ms total)\n", selected.size(), total);
  std::printf("[  PASSED  ] %zu tests.\n", selected.size() - failed.size());
  if (!failed.empty()) {
    std::printf("[  FAILED  ] %zu tests, listed below:\n", failed.size());
    for (const auto& f : failed) std::printf("[  FAILED  ] %s\n", f.c_str());
  }
  return failed.empty() ? 0 : 1;
}
