// AVX-512 bodies of the uint8 element-wise and pooling kernels: 16 values
// per zmm for the float formulas, 64 channels per zmm for max pooling;
// masked tails, so no scalar remainder loops.
#include <immintrin.h>

#include "int8/qeltwise_scalar.h"

namespace cnnx {
namespace qdetail {
namespace {

inline __mmask16 m16(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1u);
}
inline __mmask64 m64(int64_t n) { return n >= 64 ? ~__mmask64{0} : ((__mmask64{1} << n) - 1); }

// Clamped v -> nearbyint(v) + z as bytes (v already within [-z, 255 - z]).
inline __m128i to_bytes(__m512 v, __m512i z) {
  return _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(v), z));
}

bool quantize(int64_t n, const float* x, const QuantizeArgs& a, uint8_t* y) {
  const __m512 scale = _mm512_set1_ps(a.scale), lo = _mm512_set1_ps(a.lo),
               hi = _mm512_set1_ps(a.hi);
  const __m512i zp = _mm512_set1_epi32(a.zp);
  __mmask16 bad = 0;
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = m16(n - i);
    const __m512 xv = _mm512_maskz_loadu_ps(m, x + i);
    bad |= _mm512_mask_fpclass_ps_mask(m, xv, 0x99);  // QNaN, SNaN, +inf, -inf
    __m512 v = _mm512_div_ps(xv, scale);
    v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
    _mm_mask_storeu_epi8(y + i, m, to_bytes(v, zp));
  }
  return bad == 0;
}

void dequantize(int64_t n, const uint8_t* q, int32_t zp, float scale, float* y) {
  const __m512i z = _mm512_set1_epi32(zp);
  const __m512 s = _mm512_set1_ps(scale);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = m16(n - i);
    const __m512i qi = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, q + i));
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(qi, z)), s));
  }
}

void add(int64_t n, const uint8_t* a, const uint8_t* b, const AddArgs& g, uint8_t* y) {
  const __m512i za = _mm512_set1_epi32(g.za), zb = _mm512_set1_epi32(g.zb),
                zy = _mm512_set1_epi32(g.zy);
  const __m512 ma = _mm512_set1_ps(g.ma), mb = _mm512_set1_ps(g.mb), lo = _mm512_set1_ps(g.lo),
               hi = _mm512_set1_ps(g.hi);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = m16(n - i);
    const __m512i av = _mm512_sub_epi32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, a + i)), za);
    const __m512i bv = _mm512_sub_epi32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, b + i)), zb);
    const __m512 t = _mm512_mul_ps(_mm512_cvtepi32_ps(bv), mb);
    __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(av), ma, t);
    v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
    _mm_mask_storeu_epi8(y + i, m, to_bytes(v, zy));
  }
}

// 2x2 windows at stride 2 without padding on 8 or 16 channels (LeNet's
// first pooling): 64 input bytes of each of the two rows at a time, the
// maximum of the rows, then of neighbouring pixels (8 or 16 bytes apart),
// then the even pixels packed: 32 output bytes. The generic row below works
// pixel by pixel with 64-channel vectors, most of them masked off here.
bool max_pool_row_2x2_narrow(const PoolArgs& a, int64_t n, int64_t oh) {
  const PoolShape& s = *a.s;
  const Pool2dParams& p = *a.p;
  if (p.kernel_h != 2 || p.kernel_w != 2 || p.stride_h != 2 || p.stride_w != 2 || p.pad_top ||
      p.pad_bottom || p.pad_left || p.pad_right || (s.c != 8 && s.c != 16))
    return false;
  const uint8_t* r0 = a.x + ((n * s.h + 2 * oh) * s.w) * s.c;
  const uint8_t* r1 = r0 + s.w * s.c;
  uint8_t* y = a.y + (n * a.oh_count + oh) * a.ow_count * s.c;
  const int64_t in_bytes = 2 * a.ow_count * s.c, out_bytes = a.ow_count * s.c;
  const __m512i even = _mm512_set_epi64(7, 5, 3, 1, 6, 4, 2, 0);    // C = 8
  const __m512i even16 = _mm512_set_epi64(7, 6, 3, 2, 5, 4, 1, 0);  // C = 16
  for (int64_t i = 0, o = 0; i < in_bytes; i += 64, o += 32) {
    const __mmask64 m = m64(in_bytes - i);
    const __m512i v =
        _mm512_max_epu8(_mm512_maskz_loadu_epi8(m, r0 + i), _mm512_maskz_loadu_epi8(m, r1 + i));
    __m512i w;
    if (s.c == 8) {
      w = _mm512_permutexvar_epi64(even, _mm512_max_epu8(v, _mm512_bsrli_epi128(v, 8)));
    } else {
      w = _mm512_permutexvar_epi64(
          even16, _mm512_max_epu8(v, _mm512_shuffle_i64x2(v, v, _MM_SHUFFLE(2, 3, 0, 1))));
    }
    const int64_t left = out_bytes - o;
    const __mmask32 mo = left >= 32 ? ~__mmask32{0} : ((__mmask32{1} << left) - 1);
    _mm256_mask_storeu_epi8(y + o, mo, _mm512_castsi512_si256(w));
  }
  return true;
}

void max_pool_row(const PoolArgs& a, int64_t n, int64_t oh) {
  if (max_pool_row_2x2_narrow(a, n, oh)) return;
  const PoolShape& s = *a.s;
  const Pool2dParams& p = *a.p;
  int64_t h0, h1;
  pool_window(oh, p.stride_h, p.pad_top, p.kernel_h, s.h, &h0, &h1);
  for (int64_t ow = 0; ow < a.ow_count; ++ow) {
    int64_t w0, w1;
    pool_window(ow, p.stride_w, p.pad_left, p.kernel_w, s.w, &w0, &w1);
    uint8_t* y = a.y + ((n * a.oh_count + oh) * a.ow_count + ow) * s.c;
    for (int64_t c = 0; c < s.c; c += 64) {
      const __mmask64 m = m64(s.c - c);
      __m512i mx = _mm512_setzero_si512();
      for (int64_t h = h0; h < h1; ++h) {
        const uint8_t* xr = a.x + ((n * s.h + h) * s.w) * s.c + c;
        for (int64_t w = w0; w < w1; ++w)
          mx = _mm512_max_epu8(mx, _mm512_maskz_loadu_epi8(m, xr + w * s.c));
      }
      _mm512_mask_storeu_epi8(y + c, m, mx);
    }
  }
}

void avg_pool_row(const PoolArgs& a, int64_t n, int64_t oh) {
  const PoolShape& s = *a.s;
  const Pool2dParams& p = *a.p;
  int64_t h0, h1;
  pool_window(oh, p.stride_h, p.pad_top, p.kernel_h, s.h, &h0, &h1);
  const __m512i zy = _mm512_set1_epi32(a.zy);
  const __m512 lo = _mm512_set1_ps(static_cast<float>(-a.zy)),
               hi = _mm512_set1_ps(static_cast<float>(255 - a.zy));
  for (int64_t ow = 0; ow < a.ow_count; ++ow) {
    int64_t w0, w1;
    pool_window(ow, p.stride_w, p.pad_left, p.kernel_w, s.w, &w0, &w1);
    const int32_t nvalid = static_cast<int32_t>((h1 - h0) * (w1 - w0));
    const __m512i offset = _mm512_set1_epi32(nvalid * a.zx);
    const __m512 mul = _mm512_set1_ps(qscalar::average_mul(a, h1 - h0, w1 - w0));
    uint8_t* y = a.y + ((n * a.oh_count + oh) * a.ow_count + ow) * s.c;
    for (int64_t c = 0; c < s.c; c += 16) {
      const __mmask16 m = m16(s.c - c);
      __m512i sum = _mm512_setzero_si512();
      for (int64_t h = h0; h < h1; ++h) {
        const uint8_t* xr = a.x + ((n * s.h + h) * s.w) * s.c + c;
        for (int64_t w = w0; w < w1; ++w)
          sum = _mm512_add_epi32(sum, _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, xr + w * s.c)));
      }
      __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(sum, offset)), mul);
      v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
      _mm_mask_storeu_epi8(y + c, m, to_bytes(v, zy));
    }
  }
}

}  // namespace

const EltwiseKernels kQEltwiseAvx512 = {quantize, dequantize, add, max_pool_row, avg_pool_row};

}  // namespace qdetail
}  // namespace cnnx
