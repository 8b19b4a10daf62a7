// AVX2 bodies of the uint8 element-wise and pooling kernels: 8 values per
// ymm for the float formulas, 32 channels per ymm for max pooling; tails
// run the scalar formulas (identical results).
#include <immintrin.h>

#include <cstring>

#include "int8/qeltwise_scalar.h"
#include "int8/qstore_avx2.h"

namespace cnnx {
namespace qdetail {
namespace {

inline __m256i load8_u8(const uint8_t* p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
inline void store8_u8(uint8_t* p, __m256 v, __m256i z) {
  const __m128i b = qymm::bytes_of(_mm256_add_epi32(_mm256_cvtps_epi32(v), z));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(p), b);
}

bool quantize(int64_t n, const float* x, const QuantizeArgs& a, uint8_t* y) {
  const __m256 scale = _mm256_set1_ps(a.scale), lo = _mm256_set1_ps(a.lo),
               hi = _mm256_set1_ps(a.hi), zero = _mm256_setzero_ps();
  const __m256i zp = _mm256_set1_epi32(a.zp);
  __m256 bad = zero;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 xv = _mm256_loadu_ps(x + i);
    // x - x is 0 for finite x and NaN for NaN or inf.
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(_mm256_sub_ps(xv, xv), zero, _CMP_NEQ_UQ));
    __m256 v = _mm256_div_ps(xv, scale);
    v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
    store8_u8(y + i, v, zp);
  }
  bool ok = _mm256_movemask_ps(bad) == 0;
  for (; i < n; ++i) {
    ok &= qscalar::finite(x[i]);
    y[i] = qscalar::quantize_one(x[i], a);
  }
  return ok;
}

void dequantize(int64_t n, const uint8_t* q, int32_t zp, float scale, float* y) {
  const __m256i z = _mm256_set1_epi32(zp);
  const __m256 s = _mm256_set1_ps(scale);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i,
                     _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(load8_u8(q + i), z)), s));
  for (; i < n; ++i) y[i] = qscalar::dequantize_one(q[i], zp, scale);
}

void add(int64_t n, const uint8_t* a, const uint8_t* b, const AddArgs& g, uint8_t* y) {
  const __m256i za = _mm256_set1_epi32(g.za), zb = _mm256_set1_epi32(g.zb),
                zy = _mm256_set1_epi32(g.zy);
  const __m256 ma = _mm256_set1_ps(g.ma), mb = _mm256_set1_ps(g.mb), lo = _mm256_set1_ps(g.lo),
               hi = _mm256_set1_ps(g.hi);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i av = _mm256_sub_epi32(load8_u8(a + i), za);
    const __m256i bv = _mm256_sub_epi32(load8_u8(b + i), zb);
    const __m256 t = _mm256_mul_ps(_mm256_cvtepi32_ps(bv), mb);
    __m256 v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(av), ma, t);
    v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
    store8_u8(y + i, v, zy);
  }
  for (; i < n; ++i) y[i] = qscalar::add_one(a[i], b[i], g);
}

void max_pool_row(const PoolArgs& a, int64_t n, int64_t oh) {
  const PoolShape& s = *a.s;
  const Pool2dParams& p = *a.p;
  int64_t h0, h1;
  pool_window(oh, p.stride_h, p.pad_top, p.kernel_h, s.h, &h0, &h1);
  for (int64_t ow = 0; ow < a.ow_count; ++ow) {
    int64_t w0, w1;
    pool_window(ow, p.stride_w, p.pad_left, p.kernel_w, s.w, &w0, &w1);
    uint8_t* y = a.y + ((n * a.oh_count + oh) * a.ow_count + ow) * s.c;
    int64_t c = 0;
    for (; c + 32 <= s.c; c += 32) {
      __m256i mx = _mm256_setzero_si256();
      for (int64_t h = h0; h < h1; ++h) {
        const uint8_t* xr = a.x + ((n * s.h + h) * s.w) * s.c + c;
        for (int64_t w = w0; w < w1; ++w)
          mx = _mm256_max_epu8(mx,
                               _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr + w * s.c)));
      }
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + c), mx);
    }
    for (; c < s.c; ++c) {
      uint8_t m = 0;
      for (int64_t h = h0; h < h1; ++h)
        for (int64_t w = w0; w < w1; ++w) {
          const uint8_t v = a.x[((n * s.h + h) * s.w + w) * s.c + c];
          m = v > m ? v : m;
        }
      y[c] = m;
    }
  }
}

void avg_pool_row(const PoolArgs& a, int64_t n, int64_t oh) {
  const PoolShape& s = *a.s;
  const Pool2dParams& p = *a.p;
  int64_t h0, h1;
  pool_window(oh, p.stride_h, p.pad_top, p.kernel_h, s.h, &h0, &h1);
  const __m256i zy = _mm256_set1_epi32(a.zy);
  const __m256 lo = _mm256_set1_ps(static_cast<float>(-a.zy)),
               hi = _mm256_set1_ps(static_cast<float>(255 - a.zy));
  for (int64_t ow = 0; ow < a.ow_count; ++ow) {
    int64_t w0, w1;
    pool_window(ow, p.stride_w, p.pad_left, p.kernel_w, s.w, &w0, &w1);
    const int32_t nvalid = static_cast<int32_t>((h1 - h0) * (w1 - w0));
    const float mul_s = qscalar::average_mul(a, h1 - h0, w1 - w0);
    const __m256i offset = _mm256_set1_epi32(nvalid * a.zx);
    const __m256 mul = _mm256_set1_ps(mul_s);
    uint8_t* y = a.y + ((n * a.oh_count + oh) * a.ow_count + ow) * s.c;
    int64_t c = 0;
    for (; c + 8 <= s.c; c += 8) {
      __m256i sum = _mm256_setzero_si256();
      for (int64_t h = h0; h < h1; ++h) {
        const uint8_t* xr = a.x + ((n * s.h + h) * s.w) * s.c + c;
        for (int64_t w = w0; w < w1; ++w) sum = _mm256_add_epi32(sum, load8_u8(xr + w * s.c));
      }
      __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(sum, offset)), mul);
      v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
      store8_u8(y + c, v, zy);
    }
    for (; c < s.c; ++c) {
      int32_t sum = 0;
      for (int64_t h = h0; h < h1; ++h)
        for (int64_t w = w0; w < w1; ++w) sum += a.x[((n * s.h + h) * s.w + w) * s.c + c];
      y[c] = qscalar::average_one(sum, nvalid, mul_s, a.zx, a.zy);
    }
  }
}

}  // namespace

const EltwiseKernels kQEltwiseAvx2 = {quantize, dequantize, add, max_pool_row, avg_pool_row};

}  // namespace qdetail
}  // namespace cnnx
