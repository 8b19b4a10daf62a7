// The per-ISA loops behind cnnx/augment.h (augment_impl.h, compiled once per
// ISA) and the table the driver (augment.cpp) picks at run time.
#pragma once
#include <cstdint>

#include "cnnx/augment.h"

namespace cnnx {

struct AugmentKernels {
  // One output row of a geometric transform: `ow` pixels of s.c channels;
  // pixel x reads the source point (x0 + ax * x, y0 + ay * x) of img
  // (s.h, s.w, s.c) with s.interp and s.fill. Needs s.h * s.w * s.c < 2^31.
  void (*sample_row)(const AugmentSpec& s, const float* img, float* out, int64_t ow, float x0,
                     float y0, float ax, float ay);
  // sample_row with ax = 1, ay = 0 (a translation); faster for one channel.
  void (*shift_row)(const AugmentSpec& s, const float* img, float* out, int64_t ow, float x0,
                    float y0);
  // Over n values, with per-position constants of period p (a[i % p]...):
  //   affine:    y = x * a + b
  //   normalize: y = (x - a) / b
  //   contrast:  y = min(max((x - a) * f + a, lo), hi)
  void (*affine)(const float* x, float* y, int64_t n, const float* a, const float* b, int64_t p);
  void (*normalize)(const float* x, float* y, int64_t n, const float* a, const float* b, int64_t p);
  void (*contrast)(const float* x, float* y, int64_t n, const float* a, int64_t p, float f,
                   float lo, float hi);
};

namespace augment_generic {
extern const AugmentKernels kernels;
}
namespace augment_avx2 {
extern const AugmentKernels kernels;
}
namespace augment_avx512 {
extern const AugmentKernels kernels;
}

// Source indices of one tap coordinate under a fill mode (scalar; the
// backward pass and the tests' reference use this one).
inline int64_t fill_index(int64_t i, int64_t len, FillMode mode, bool* inside) {
  *inside = true;
  switch (mode) {
    case FillMode::reflect: {
      const int64_t p = 2 * len;
      int64_t r = i % p;
      if (r < 0) r += p;
      return r >= len ? p - 1 - r : r;
    }
    case FillMode::wrap: {
      int64_t r = i % len;
      return r < 0 ? r + len : r;
    }
    case FillMode::nearest: return i < 0 ? 0 : i >= len ? len - 1 : i;
    case FillMode::constant: *inside = i >= 0 && i < len; return i < 0 ? 0 : i >= len ? len - 1 : i;
  }
  return 0;
}

}  // namespace cnnx
