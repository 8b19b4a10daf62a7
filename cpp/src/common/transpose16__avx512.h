// A 16x16 float transpose in AVX-512 registers: r[i] holds row i on entry
// and column i on exit. Include only from *__avx512.cpp files.
#pragma once
#include <immintrin.h>

namespace cnnx {

inline void transpose16(__m512* r) {
  __m512 t[16], u[16], v[8], w[8];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int q = 0; q < 4; ++q) {  // rows 4q .. 4q+3
    const __m512d a = _mm512_castps_pd(t[4 * q]), b = _mm512_castps_pd(t[4 * q + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * q + 2]), d = _mm512_castps_pd(t[4 * q + 3]);
    u[4 * q + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));  // cols 0,4,8,12
    u[4 * q + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));  // cols 1,5,9,13
    u[4 * q + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));  // cols 2,6,10,14
    u[4 * q + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));  // cols 3,7,11,15
  }
  for (int c = 0; c < 4; ++c) {
    v[2 * c] = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88);      // col c, c+8: rows 0-7
    v[2 * c + 1] = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);  // col c+4, c+12
    w[2 * c] = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
    w[2 * c + 1] = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
  }
  for (int c = 0; c < 4; ++c) {
    r[c] = _mm512_shuffle_f32x4(v[2 * c], w[2 * c], 0x88);
    r[c + 8] = _mm512_shuffle_f32x4(v[2 * c], w[2 * c], 0xDD);
    r[c + 4] = _mm512_shuffle_f32x4(v[2 * c + 1], w[2 * c + 1], 0x88);
    r[c + 12] = _mm512_shuffle_f32x4(v[2 * c + 1], w[2 * c + 1], 0xDD);
  }
}

}  // namespace cnnx
