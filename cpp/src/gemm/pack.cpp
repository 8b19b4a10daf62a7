// Packing of plain strided matrices into micro-panels (see PackSource).
#include <algorithm>
#include <cstring>

#include "cnnx/cpu.h"
#include "cnnx/gemm.h"

namespace cnnx {

// pack__avx512.cpp / pack__avx2.cpp: the same layout through 16x16 or 8x8
// register transposes.
void pack_rows__avx512(const float* data, int64_t ld, int64_t r0, int64_t rows, int64_t k0,
                       int64_t kc, int width, float* dst);
void pack_rows__avx2(const float* data, int64_t ld, int64_t r0, int64_t rows, int64_t k0,
                     int64_t kc, int width, float* dst);

namespace {

// Row-major rows: element (r, k) = data[r*ld + k]. Each panel row is read
// contiguously along k and written with stride `width`.
void pack_rows(const void* ctx, int64_t r0, int64_t rows, int64_t k0, int64_t kc, int width,
               float* dst) {
  const auto* m = static_cast<const StridedMatrix*>(ctx);
  const Isa isa = active_isa();
  if (isa == Isa::avx512 && width <= 32) {
    pack_rows__avx512(m->data, m->ld, r0, rows, k0, kc, width, dst);
    return;
  }
  if (isa == Isa::avx2 && width <= 16) {
    pack_rows__avx2(m->data, m->ld, r0, rows, k0, kc, width, dst);
    return;
  }
  for (int64_t p = 0; p < rows; p += width) {
    const int w = static_cast<int>(std::min<int64_t>(width, rows - p));
    const float* src = m->data + (r0 + p) * m->ld + k0;
    if (w < width) std::memset(dst, 0, sizeof(float) * width * kc);
    for (int i = 0; i < w; ++i) {
      const float* s = src + i * m->ld;
      float* d = dst + i;
      for (int64_t k = 0; k < kc; ++k) d[k * width] = s[k];
    }
    dst += width * kc;
  }
}

// kc rows of exactly W floats: a fixed-size copy the compiler inlines into
// vector moves (a libc memcpy call per 64-128 bytes would dominate).
template <int W>
void copy_rows(const float* src, int64_t ld, int64_t kc, float* dst) {
  for (int64_t k = 0; k < kc; ++k) std::memcpy(dst + k * W, src + k * ld, sizeof(float) * W);
}

// Rows a strided copy fetches ahead of the one it reads.
constexpr int64_t kAhead = 8;

// Transposed: element (r, k) = data[k*ld + r]; each k gives `width`
// contiguous values, a straight copy. Several full panels are filled k by k,
// so that each source row is read as one run (not one short run per panel).
void pack_cols(const void* ctx, int64_t r0, int64_t rows, int64_t k0, int64_t kc, int width,
               float* dst) {
  const auto* m = static_cast<const StridedMatrix*>(ctx);
  const int64_t full = rows / width;
  if (full > 1 && (width == 16 || width == 32)) {
    const float* src = m->data + k0 * m->ld + r0;
    const int64_t pstride = width * kc;
    for (int64_t k = 0; k < kc; ++k, src += m->ld) {
      // Rows are far apart (a new page every row or two): fetch ahead.
      if (k + kAhead < kc)
        for (int64_t q = 0; q < full * width; q += 16) __builtin_prefetch(src + kAhead * m->ld + q);
      float* d = dst + k * width;
      if (width == 16)
        for (int64_t q = 0; q < full; ++q) std::memcpy(d + q * pstride, src + q * 16, 64);
      else
        for (int64_t q = 0; q < full; ++q) std::memcpy(d + q * pstride, src + q * 32, 128);
    }
    dst += full * pstride;
    r0 += full * width;
    rows -= full * width;
  }
  for (int64_t p = 0; p < rows; p += width) {
    const int w = static_cast<int>(std::min<int64_t>(width, rows - p));
    const float* src = m->data + k0 * m->ld + r0 + p;
    if (w == 32 && width == 32) {
      copy_rows<32>(src, m->ld, kc, dst);
    } else if (w == 16 && width == 16) {
      copy_rows<16>(src, m->ld, kc, dst);
    } else {
      for (int64_t k = 0; k < kc; ++k) {
        const float* s = src + k * m->ld;
        float* d = dst + k * width;
        std::memcpy(d, s, sizeof(float) * w);
        if (w < width) std::memset(d + w, 0, sizeof(float) * (width - w));
      }
    }
    dst += width * kc;
  }
}

}  // namespace

PackSource strided_source(const StridedMatrix* m) {
  if (m->transposed) return PackSource{pack_cols, m};
  return PackSource{pack_rows, m, m->data, m->ld};
}

}  // namespace cnnx
