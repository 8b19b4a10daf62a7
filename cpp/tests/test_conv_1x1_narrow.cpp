// The narrow 1x1 kernel (conv_1x1_narrow__avx512.cpp) against naive loops:
// output counts up to 16 (partial vectors), depths with and without a
// partial register chunk, pixel counts that leave a partial tile, a pixel
// range inside the image, every epilogue part; more outputs are refused.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <vector>

#include "cnnx/cpu.h"
#include "conv/conv_direct.h"
#include "conv/conv_internal.h"
#include "test_util.h"

namespace {

void check(int64_t P, int64_t K, int64_t cog, int64_t p0, int64_t p1, bool full_epi,
           uint32_t seed) {
  // Row strides wider than the rows read, as for a layer inside a bigger buffer.
  const int64_t ldx = K + 3, ldw = cog + 2, ldy = cog + 1;
  const auto x = cnnx_test::random_vector(P * ldx, seed);
  const auto w = cnnx_test::random_vector(K * ldw, seed + 1);
  const auto b = cnnx_test::random_vector(cog, seed + 2);
  const auto sc = cnnx_test::random_vector(cog, seed + 3, 0.5f, 1.5f);
  const auto res = cnnx_test::random_vector(P * ldy, seed + 4);
  cnnx::conv_detail::DirectEpi ep;
  ep.bias = b.data();
  if (full_epi) {
    ep.scale = sc.data();
    ep.res = res.data();
    ep.relu = true;
    ep.relu_max = 0.5f;
  }
  std::vector<float> y(P * ldy, -7.0f);
  cnnx::conv_detail::conv1x1_narrow_avx512(x.data(), ldx, K, w.data(), ldw, cog, ep, y.data(), ldy,
                                           p0, p1);
  for (int64_t p = 0; p < P; ++p)
    for (int64_t c = 0; c < ldy; ++c) {
      const float got = y[p * ldy + c];
      if (p < p0 || p >= p1 || c >= cog) {
        ASSERT_EQ(got, -7.0f) << "wrote outside its range at " << p << ", " << c;
        continue;
      }
      double v = 0.0;
      for (int64_t k = 0; k < K; ++k) v += double(x[p * ldx + k]) * w[k * ldw + c];
      if (full_epi) {
        v = v * sc[c] + b[c] + res[p * ldy + c];
        v = std::min(std::max(v, 0.0), 0.5);
      } else {
        v += b[c];
      }
      ASSERT_NEAR(got, v, 1e-4 * (1.0 + std::fabs(v))) << p << ", " << c;
    }
}

TEST(Conv1x1Narrow, RefusesWideOutputs) {
  if (cnnx::detected_isa() < cnnx::Isa::avx512) return;
  std::vector<float> x(4 * 8), w(8 * 17), y(4 * 17);
  cnnx::conv_detail::DirectEpi ep;
  EXPECT_THROW(cnnx::conv_detail::conv1x1_narrow_avx512(x.data(), 8, 8, w.data(), 17, 17, ep,
                                                        y.data(), 17, 0, 4),
               std::invalid_argument);
}

TEST(Conv1x1Narrow, EveryWidthAndTail) {
  if (cnnx::detected_isa() < cnnx::Isa::avx512) {
    std::printf("no AVX-512 on this CPU: the kernel is never used here\n");
    return;
  }
  uint32_t seed = 1;
  for (int64_t cog : {1, 5, 12, 16})
    for (int64_t K : {3, 16, 17, 40})
      for (bool full : {false, true}) {
        SCOPED_TRACE(cog);
        SCOPED_TRACE(K);
        check(37, K, cog, 0, 37, full, seed);
        check(37, K, cog, 5, 30, full, seed + 100);
        seed += 7;
      }
}

}  // namespace
