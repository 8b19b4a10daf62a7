// AVX2+FMA body of the padded direct convolution (see conv_direct_padded.h):
// the same walk as the AVX-512 one with 16 ymm registers, so a tile is 6
// output pixels x 16 output channels (two ymm each): 12 accumulators, two
// weight vectors and one broadcast.
#include <immintrin.h>

#include <algorithm>

#include "plan/conv_direct_padded.h"

namespace cnnx {
namespace plan_detail {
namespace {

template <int CIN, int S, int K>
void tile(const float* row0, int64_t Wp_floats, const float* w, int64_t cout,
          const DirectEpilogue& ep, int64_t co, float* y, const float* res, int64_t ldy,
          int valid) {
  constexpr int R = 6;
  __m256 acc[R][2];
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (int kh = 0; kh < K; ++kh) {
    const float* a = row0 + kh * Wp_floats;
    const float* wk = w + kh * K * CIN * cout;
    for (int l = 0; l < K * CIN; ++l) {
      const __m256 w0 = _mm256_loadu_ps(wk + l * cout);
      const __m256 w1 = _mm256_loadu_ps(wk + l * cout + 8);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const __m256 av = _mm256_broadcast_ss(a + r * S * CIN + l);
        acc[r][0] = _mm256_fmadd_ps(av, w0, acc[r][0]);
        acc[r][1] = _mm256_fmadd_ps(av, w1, acc[r][1]);
      }
    }
  }
  const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
  __m256 b[2], sc[2];
  for (int j = 0; j < 2; ++j) {
    b[j] = ep.bias ? _mm256_loadu_ps(ep.bias + co + 8 * j) : zero;
    sc[j] = ep.scale ? _mm256_loadu_ps(ep.scale + co + 8 * j) : one;
  }
  for (int r = 0; r < R; ++r) {
    if (r >= valid) break;
    for (int j = 0; j < 2; ++j) {
      __m256 v = _mm256_fmadd_ps(acc[r][j], sc[j], b[j]);
      if (res) v = _mm256_add_ps(v, _mm256_loadu_ps(res + r * ldy + 8 * j));
      if (ep.relu) v = _mm256_max_ps(zero, v);  // NaN passes, as std::max(v, 0)
      _mm256_storeu_ps(y + r * ldy + 8 * j, v);
    }
  }
}

template <int CIN, int S, int K>
void rows(const Conv2dShape& s, const float* xp, int64_t Wp, const float* w,
          const DirectEpilogue& ep, float* y, int64_t row0, int64_t row1) {
  constexpr int R = 6;
  const int64_t OW = s.out_w(), Cout = s.C_out;
  for (int64_t oh = row0; oh < row1; ++oh) {
    const float* in_row = xp + oh * S * Wp * CIN;
    float* out_row = y + oh * OW * Cout;
    for (int64_t ow = 0; ow < OW; ow += R) {
      const int valid = static_cast<int>(std::min<int64_t>(R, OW - ow));
      for (int64_t co = 0; co < Cout; co += 16)
        tile<CIN, S, K>(in_row + ow * S * CIN, Wp * CIN, w + co, Cout, ep, co,
                        out_row + ow * Cout + co,
                        ep.res ? ep.res + (oh * OW + ow) * Cout + co : nullptr, Cout, valid);
    }
  }
}

}  // namespace

void conv_direct_padded_rows_avx2(const Conv2dShape& s, const float* xp, int64_t Wp,
                                  const float* w, const DirectEpilogue& ep, float* y,
                                  int64_t row0, int64_t row1) {
  const int key = static_cast<int>(s.KH) * 1000 + static_cast<int>(s.C_in) * 10 +
                  static_cast<int>(s.stride_h);
  switch (key) {
    case 3161: return rows<16, 1, 3>(s, xp, Wp, w, ep, y, row0, row1);
    case 3162: return rows<16, 2, 3>(s, xp, Wp, w, ep, y, row0, row1);
    case 3321: return rows<32, 1, 3>(s, xp, Wp, w, ep, y, row0, row1);
    case 3322: return rows<32, 2, 3>(s, xp, Wp, w, ep, y, row0, row1);
    case 5081: return rows<8, 1, 5>(s, xp, Wp, w, ep, y, row0, row1);
    case 1162: return rows<16, 2, 1>(s, xp, Wp, w, ep, y, row0, row1);
    case 1322: return rows<32, 2, 1>(s, xp, Wp, w, ep, y, row0, row1);
    default: return;
  }
}

}  // namespace plan_detail
}  // namespace cnnx
