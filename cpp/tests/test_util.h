// Helpers shared by the C++ tests: random data, tolerant comparison and a
// loop over every ISA level this CPU supports.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "cnnx/cpu.h"

namespace cnnx_test {

inline std::vector<float> random_vector(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Every level the CPU can run, lowest first.
inline std::vector<cnnx::Isa> supported_isas() {
  std::vector<cnnx::Isa> out;
  for (int i = 0; i <= static_cast<int>(cnnx::detected_isa()); ++i)
    out.push_back(static_cast<cnnx::Isa>(i));
  return out;
}

// Sets an ISA level for one scope and restores the previous one.
class IsaScope {
 public:
  explicit IsaScope(cnnx::Isa isa) : saved_(cnnx::active_isa()) { cnnx::set_active_isa(isa); }
  ~IsaScope() { cnnx::set_active_isa(saved_); }

 private:
  cnnx::Isa saved_;
};

// |a - b| <= atol + rtol * |b| elementwise; reports the first mismatch.
inline ::testing::AssertionResult all_close(const float* a, const float* b, size_t n, float rtol,
                                            float atol) {
  for (size_t i = 0; i < n; ++i) {
    const float d = std::fabs(a[i] - b[i]);
    if (!(d <= atol + rtol * std::fabs(b[i])) && !(std::isnan(a[i]) && std::isnan(b[i])))
      return ::testing::AssertionFailure()
             << "element " << i << ": got " << a[i] << ", expected " << b[i];
  }
  return ::testing::AssertionSuccess();
}

}  // namespace cnnx_test
