// AVX-512 body of the padded direct convolution (see conv_direct_padded.h).
#include <immintrin.h>

#include <algorithm>

#include "plan/conv_direct_padded.h"

namespace cnnx {
namespace plan_detail {
namespace {

// R output pixels x NV*16 output channels in registers. For each filter row
// and each of the 3*CIN patch values of that row: NV weight loads, then R
// broadcast FMAs whose addresses differ by the constant S*CIN floats.
template <int CIN, int S, int R, int NV, int K = 3>
void tile(const float* row0, int64_t Wp_floats, const float* w, int64_t cout,
          const DirectEpilogue& ep, int64_t co, float* y, const float* res, int64_t ldy,
          int valid) {
  __m512 acc[R][NV];
#pragma GCC unroll 32
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_setzero_ps();
  for (int kh = 0; kh < K; ++kh) {
    const float* a = row0 + kh * Wp_floats;
    const float* wk = w + kh * K * CIN * cout;
    for (int l = 0; l < K * CIN; ++l) {
      __m512 wv[NV];
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) wv[j] = _mm512_loadu_ps(wk + l * cout + 16 * j);
#pragma GCC unroll 32
      for (int r = 0; r < R; ++r) {
        const __m512 av = _mm512_set1_ps(a[r * S * CIN + l]);
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_fmadd_ps(av, wv[j], acc[r][j]);
      }
    }
  }
  const __m512 zero = _mm512_setzero_ps();
  __m512 b[NV], sc[NV];
  for (int j = 0; j < NV; ++j) {
    b[j] = ep.bias ? _mm512_loadu_ps(ep.bias + co + 16 * j) : zero;
    sc[j] = ep.scale ? _mm512_loadu_ps(ep.scale + co + 16 * j) : _mm512_set1_ps(1.0f);
  }
  const bool relu = ep.relu;
#pragma GCC unroll 32
  for (int r = 0; r < R; ++r) {
    if (r >= valid) break;
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      __m512 v = _mm512_fmadd_ps(acc[r][j], sc[j], b[j]);
      if (res) v = _mm512_add_ps(v, _mm512_loadu_ps(res + r * ldy + 16 * j));
      if (relu) v = _mm512_max_ps(zero, v);  // NaN passes, as std::max(v, 0)
      _mm512_storeu_ps(y + r * ldy + 16 * j, v);
    }
  }
}

// One input channel (a grey-image stem), stride 1: each input pixel of a
// row segment is broadcast once and meets the three taps of the filter row,
// so the kernel does 3 FMAs per broadcast (the general tile would reload the
// same pixel three times, and GCC's attempts to reuse those loads spill).
template <int R>
void tile_c1(const float* row0, int64_t Wp, const float* w, int64_t cout,
             const DirectEpilogue& ep, int64_t co, float* y, const float* res, int64_t ldy,
             int valid) {
  __m512 acc[R];
#pragma GCC unroll 32
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  for (int kh = 0; kh < 3; ++kh) {
    const float* a = row0 + kh * Wp;
    const __m512 w0 = _mm512_loadu_ps(w + (kh * 3 + 0) * cout);
    const __m512 w1 = _mm512_loadu_ps(w + (kh * 3 + 1) * cout);
    const __m512 w2 = _mm512_loadu_ps(w + (kh * 3 + 2) * cout);
#pragma GCC unroll 40
    for (int j = 0; j < R + 2; ++j) {
      const __m512 v = _mm512_set1_ps(a[j]);
      if (j < R) acc[j] = _mm512_fmadd_ps(v, w0, acc[j]);
      if (j >= 1 && j - 1 < R) acc[j - 1] = _mm512_fmadd_ps(v, w1, acc[j - 1]);
      if (j >= 2) acc[j - 2] = _mm512_fmadd_ps(v, w2, acc[j - 2]);
    }
  }
  const __m512 zero = _mm512_setzero_ps();
  const __m512 b = ep.bias ? _mm512_loadu_ps(ep.bias + co) : zero;
  const __m512 sc = ep.scale ? _mm512_loadu_ps(ep.scale + co) : _mm512_set1_ps(1.0f);
  const bool relu = ep.relu;
#pragma GCC unroll 32
  for (int r = 0; r < R; ++r) {
    if (r >= valid) break;
    __m512 v = _mm512_fmadd_ps(acc[r], sc, b);
    if (res) v = _mm512_add_ps(v, _mm512_loadu_ps(res + r * ldy));
    if (relu) v = _mm512_max_ps(zero, v);
    _mm512_storeu_ps(y + r * ldy, v);
  }
}

void rows_c1(const Conv2dShape& s, const float* xp, int64_t Wp, const float* w,
             const DirectEpilogue& ep, float* y, int64_t row0, int64_t row1) {
  constexpr int R = 14;
  const int64_t OW = s.out_w(), Cout = s.C_out;
  for (int64_t oh = row0; oh < row1; ++oh) {
    const float* in_row = xp + oh * Wp;
    float* out_row = y + oh * OW * Cout;
    for (int64_t ow = 0; ow < OW; ow += R) {
      const int valid = static_cast<int>(std::min<int64_t>(R, OW - ow));
      for (int64_t co = 0; co < Cout; co += 16)
        tile_c1<R>(in_row + ow, Wp, w + co, Cout, ep, co, out_row + ow * Cout + co,
                   ep.res ? ep.res + (oh * OW + ow) * Cout + co : nullptr, Cout, valid);
    }
  }
}

template <int CIN, int S, int R, int NV, int K = 3>
void rows(const Conv2dShape& s, const float* xp, int64_t Wp, const float* w,
          const DirectEpilogue& ep, float* y, int64_t row0, int64_t row1) {
  const int64_t OW = s.out_w(), Cout = s.C_out;
  for (int64_t oh = row0; oh < row1; ++oh) {
    const float* in_row = xp + oh * S * Wp * CIN;
    float* out_row = y + oh * OW * Cout;
    for (int64_t ow = 0; ow < OW; ow += R) {
      const int valid = static_cast<int>(std::min<int64_t>(R, OW - ow));
      for (int64_t co = 0; co < Cout; co += 16 * NV)
        tile<CIN, S, R, NV, K>(in_row + ow * S * CIN, Wp * CIN, w + co, Cout, ep, co,
                               out_row + ow * Cout + co,
                               ep.res ? ep.res + (oh * OW + ow) * Cout + co : nullptr, Cout,
                               valid);
    }
  }
}

}  // namespace

void conv_direct_padded_rows_avx512(const Conv2dShape& s, const float* xp, int64_t Wp,
                                    const float* w, const DirectEpilogue& ep, float* y,
                                    int64_t row0, int64_t row1) {
  // 16 output channels: one zmm per pixel, 14 pixels per tile; 32 or more:
  // two zmm per pixel, 7 pixels (a whole 7-wide row of a small map).
  const bool wide = s.C_out % 32 == 0;
  const int key = static_cast<int>(s.C_in) * 10 + static_cast<int>(s.stride_h);
  if (s.KH == 1) {  // 1x1 stride 2 (a ResNet's projection shortcut)
    switch (key) {
      case 162: return wide ? rows<16, 2, 7, 2, 1>(s, xp, Wp, w, ep, y, row0, row1)
                            : rows<16, 2, 14, 1, 1>(s, xp, Wp, w, ep, y, row0, row1);
      case 322: return wide ? rows<32, 2, 7, 2, 1>(s, xp, Wp, w, ep, y, row0, row1)
                            : rows<32, 2, 14, 1, 1>(s, xp, Wp, w, ep, y, row0, row1);
      default: return;
    }
  }
  if (s.KH == 5) {
    if (key == 81) rows<8, 1, 10, 1, 5>(s, xp, Wp, w, ep, y, row0, row1);
    return;
  }
  switch (key) {
    case 161: return wide ? rows<16, 1, 7, 2>(s, xp, Wp, w, ep, y, row0, row1)
                          : rows<16, 1, 14, 1>(s, xp, Wp, w, ep, y, row0, row1);
    case 162: return wide ? rows<16, 2, 7, 2>(s, xp, Wp, w, ep, y, row0, row1)
                          : rows<16, 2, 14, 1>(s, xp, Wp, w, ep, y, row0, row1);
    case 321: return wide ? rows<32, 1, 7, 2>(s, xp, Wp, w, ep, y, row0, row1)
                          : rows<32, 1, 14, 1>(s, xp, Wp, w, ep, y, row0, row1);
    case 322: return wide ? rows<32, 2, 7, 2>(s, xp, Wp, w, ep, y, row0, row1)
                          : rows<32, 2, 14, 1>(s, xp, Wp, w, ep, y, row0, row1);
    case 11: return rows_c1(s, xp, Wp, w, ep, y, row0, row1);
    default: return;
  }
}

}  // namespace plan_detail
}  // namespace cnnx
