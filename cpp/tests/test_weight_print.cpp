// The weight fingerprint that inference plans keep instead of a copy of the
// weights they packed (plan/weight_print.h): the same value on every ISA,
// and a different one after any single changed value (every position of a
// block with a tail), a swap of two values, or a sign flip.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "plan/weight_print.h"
#include "test_util.h"

namespace {

using cnnx::plan_detail::kPrintWords;
using cnnx::plan_detail::weight_print;

std::vector<uint32_t> print_of(const std::vector<float>& w) {
  std::vector<uint32_t> p(kPrintWords);
  weight_print(w.data(), static_cast<int64_t>(w.size()), p.data());
  return p;
}

TEST(WeightPrint, SameOnEveryIsa) {
  for (size_t n : {0u, 1u, 63u, 64u, 65u, 1000u, 4096u}) {
    const auto w = cnnx_test::random_vector(static_cast<int64_t>(n), 7 + static_cast<uint32_t>(n));
    std::vector<uint32_t> first;
    for (cnnx::Isa isa : cnnx_test::supported_isas()) {
      cnnx_test::IsaScope scope(isa);
      const auto p = print_of(w);
      if (first.empty())
        first = p;
      else
        EXPECT_EQ(p, first) << cnnx::isa_name(isa) << " n=" << n;
    }
  }
}

TEST(WeightPrint, NoticesEveryEdit) {
  for (cnnx::Isa isa : cnnx_test::supported_isas()) {
    cnnx_test::IsaScope scope(isa);
    SCOPED_TRACE(cnnx::isa_name(isa));
    auto w = cnnx_test::random_vector(300, 11);  // 4 blocks of 64 and a tail of 44
    const auto base = print_of(w);
    for (size_t i = 0; i < w.size(); ++i) {
      const float keep = w[i];
      w[i] = std::nextafter(keep, 2.0f);  // the smallest change
      ASSERT_NE(print_of(w), base) << "position " << i;
      w[i] = -keep;
      ASSERT_NE(print_of(w), base) << "sign at " << i;
      w[i] = keep;
    }
    EXPECT_EQ(print_of(w), base);
    std::swap(w[3], w[67]);  // the same lane, different blocks
    EXPECT_NE(print_of(w), base);
    std::swap(w[3], w[67]);
    std::swap(w[5], w[6]);  // neighbours
    EXPECT_NE(print_of(w), base);
  }
}

}  // namespace
