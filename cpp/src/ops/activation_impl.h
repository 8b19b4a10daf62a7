// Exp-based activation loops, written once and compiled per ISA:
// activation.cpp (portable), activation__avx2.cpp, activation__avx512.cpp
// include this file with CNNX_ACT_NS set to their own namespace. The exp is
// a branch-free Cephes-style polynomial (error ~1-2 ulp) so that the
// compiler vectorises every loop; std::exp would not be.
#include <cstdint>
#include <cstring>

#include "ops/activation_kernels.h"

namespace cnnx {
namespace CNNX_ACT_NS {
namespace {

// Every select below is a bitwise blend under an all-ones / all-zeros
// integer mask. With GCC's default -ftrapping-math a float comparison or a
// ?: between float values turns into control flow that blocks vectorisation
// on AVX2 / SSE2; integer masks and bit operations do not.
inline uint32_t fbits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
inline float ffrom(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
inline uint32_t mask_if(bool c) { return 0u - static_cast<uint32_t>(c); }
inline float blend(uint32_t m, float a, float b) {  // m ? a : b
  return ffrom((fbits(a) & m) | (fbits(b) & ~m));
}
inline uint32_t nan_mask(uint32_t u) { return mask_if((u & 0x7fffffffu) > 0x7f800000u); }
// A signed integer with the same order as the float (for non-NaN values).
inline int32_t ordered(float f) {
  const int32_t i = static_cast<int32_t>(fbits(f));
  const int32_t flip = (i >> 31) & 0x7fffffff;
  return i ^ flip;
}

// exp(x) for x <= 0 (every caller subtracts a maximum or uses -|x|): 0 below
// -87.3 (where float underflows), NaN stays NaN, positive x is treated as 0.
inline float vexp_nonpos(float x) {
  const float lo = -87.33654f;
  const uint32_t u = fbits(x), ulo = 0xc2aeac4fu;  // fbits(lo)
  const uint32_t positive = mask_if(static_cast<int32_t>(u) >= 0);
  const uint32_t below = ~positive & mask_if(u > ulo);  // x < lo, -inf, -NaN
  const float xc = blend(positive, 0.0f, blend(below, lo, x));
  // n = round(x / ln2) with the 1.5 * 2^23 trick; n in [-126, 0] is also in
  // t's low mantissa bits, so no float->int conversion is needed.
  const float shifter = 12582912.0f;
  const float t = xc * 1.44269504088896341f + shifter;
  const float n = t - shifter;
  const int32_t ni = static_cast<int32_t>(fbits(t) - fbits(shifter));
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const float scale = ffrom(static_cast<uint32_t>(ni + 127) << 23);  // 2^n
  const float y = blend(below, 0.0f, p * scale);
  return blend(nan_mask(u), x, y);
}

void sigmoid_loop(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const uint32_t u = fbits(v);
    const float e = vexp_nonpos(ffrom(u | 0x80000000u));  // exp(-|v|): never overflows
    const float s = 1.0f / (1.0f + e);
    const uint32_t neg = static_cast<uint32_t>(static_cast<int32_t>(u) >> 31);
    y[i] = blend(neg, e * s, s);
  }
}

void tanh_loop(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const uint32_t u = fbits(v);
    const float a = ffrom(u & 0x7fffffffu);
    // Large |v|: (1 - e) / (1 + e) with e = exp(-2|v|).
    const float e = vexp_nonpos(-2.0f * a);
    const float big = (1.0f - e) / (1.0f + e);
    // Small |v| (< 0.125): odd Taylor series, no cancellation.
    const float v2 = a * a;
    const float small = a + a * v2 * (-1.0f / 3.0f + v2 * (2.0f / 15.0f + v2 * (-17.0f / 315.0f)));
    const float t = blend(mask_if((u & 0x7fffffffu) < 0x3e000000u), small, big);  // 0.125f
    y[i] = blend(nan_mask(u), v, ffrom(fbits(t) | (u & 0x80000000u)));
  }
}

constexpr int L = 16;  // independent lanes for the max / sum reductions

void softmax_loop(const float* x, float* y, int64_t rows, int64_t K) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * K;
    float* yr = y + r * K;
    int32_t mm[L];
    for (int j = 0; j < L; ++j) mm[j] = ordered(-__builtin_inff());
    int64_t k = 0;
    for (; k + L <= K; k += L)
      for (int j = 0; j < L; ++j) {
        const int32_t o = ordered(xr[k + j]);
        mm[j] = o > mm[j] ? o : mm[j];
      }
    int32_t mo = ordered(-__builtin_inff());
    for (int j = 0; j < L; ++j) mo = mm[j] > mo ? mm[j] : mo;
    for (; k < K; ++k) {
      const int32_t o = ordered(xr[k]);
      mo = o > mo ? o : mo;
    }
    // back from the ordered integer to the float (the map is an involution)
    const float m = ffrom(static_cast<uint32_t>(mo ^ ((mo >> 31) & 0x7fffffff)));
    float ss[L];
    for (int j = 0; j < L; ++j) ss[j] = 0.0f;
    k = 0;
    for (; k + L <= K; k += L)
      for (int j = 0; j < L; ++j) {
        const float t = vexp_nonpos(xr[k + j] - m);
        yr[k + j] = t;
        ss[j] += t;
      }
    double s = 0.0;
    for (int j = 0; j < L; ++j) s += ss[j];
    for (; k < K; ++k) {
      const float t = vexp_nonpos(xr[k] - m);
      yr[k] = t;
      s += t;
    }
    const float inv = static_cast<float>(1.0 / s);
    for (k = 0; k < K; ++k) yr[k] *= inv;
  }
}

}  // namespace

const ActKernels kernels = {sigmoid_loop, tanh_loop, softmax_loop};

}  // namespace CNNX_ACT_NS
}  // namespace cnnx
