// AVX2 packing of row-major rows into micro-panels (see pack__avx512.cpp):
// blocks of 8 rows x 8 k through an in-register 8x8 transpose.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

namespace cnnx {
namespace {

inline void transpose8(__m256* r) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int q = 0; q < 2; ++q) {
    u[4 * q + 0] = _mm256_shuffle_ps(t[4 * q], t[4 * q + 2], 0x44);
    u[4 * q + 1] = _mm256_shuffle_ps(t[4 * q], t[4 * q + 2], 0xEE);
    u[4 * q + 2] = _mm256_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0x44);
    u[4 * q + 3] = _mm256_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0xEE);
  }
  for (int c = 0; c < 4; ++c) {
    r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
    r[c + 4] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
  }
}

inline __m256i lane_mask(int count) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), idx);
}

}  // namespace

void pack_rows__avx2(const float* data, int64_t ld, int64_t r0, int64_t rows, int64_t k0,
                     int64_t kc, int width, float* dst) {
  for (int64_t p = 0; p < rows; p += width) {
    const int w = static_cast<int>(std::min<int64_t>(width, rows - p));
    const float* src = data + (r0 + p) * ld + k0;
    for (int rb = 0; rb < width; rb += 8) {
      const int bw = std::min(8, width - rb);
      const int live = std::max(0, std::min(bw, w - rb));
      const __m256i store_mask = lane_mask(bw);
      for (int64_t k = 0; k < kc; k += 8) {
        const int kn = static_cast<int>(std::min<int64_t>(8, kc - k));
        __m256 r[8];
        if (kn == 8) {
          for (int i = 0; i < 8; ++i)
            r[i] = i < live ? _mm256_loadu_ps(src + (rb + i) * ld + k) : _mm256_setzero_ps();
        } else {
          const __m256i load_mask = lane_mask(kn);
          for (int i = 0; i < 8; ++i)
            r[i] = i < live ? _mm256_maskload_ps(src + (rb + i) * ld + k, load_mask)
                            : _mm256_setzero_ps();
        }
        transpose8(r);
        float* d = dst + k * width + rb;
        // Masked stores are slow on some CPUs (AMD): a narrow panel (width
        // < 8, one row block) is written with full stores whose spill-over
        // lanes land on the next k's values, written next; only the panel's
        // last k is stored masked.
        for (int j = 0; j < kn; ++j) {
          if (bw == 8 || (bw == width && k + j + 1 < kc))
            _mm256_storeu_ps(d + j * width, r[j]);
          else
            _mm256_maskstore_ps(d + j * width, store_mask, r[j]);
        }
      }
    }
    dst += static_cast<int64_t>(width) * kc;
  }
}

}  // namespace cnnx
