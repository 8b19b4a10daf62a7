// The augmentation loops, written once over a vector type V and compiled per
// ISA: augment.cpp (V = one float), augment__avx2.cpp (8 lanes, gathers) and
// augment__avx512.cpp (16 lanes, masked gathers) define V and
// CNNX_AUGMENT_NS, then include this file.
//
// V provides T (floats), TI (int32 lanes; int64 for the portable V), M (a
// lane mask), W, and: set1, iota (0, 1, ..., W-1), load, store, load_n /
// store_n (first n lanes), add, sub, mul, div, min, max, floor, fma(a, b, c)
// = a * b + c, lt / ge (masks), mand, all_true, blend(m, a, b) = m ? a : b,
// cvt (exact integral float -> TI), madd(a, k, b) = a * k + b on TI,
// gather(base, idx, m, src) (m ? base[idx] : src per lane), store_i / store_f
// (lanes to memory, for the per-channel loop).
//
// A geometric row is computed W pixels at a time: source coordinates, their
// taps mapped by the fill mode (float arithmetic on integral values, exact),
// then one gather per tap for single-channel images, or a per-pixel loop
// over channels otherwise (several channels share one set of taps).
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "augment/augment_kernels.h"

namespace cnnx {
namespace CNNX_AUGMENT_NS {
namespace {

using T = V::T;
using TI = V::TI;
using M = V::M;

constexpr float kBig = 4194304.0f;  // 2^22: coordinates are clamped to +-kBig (integers stay exact)

inline T ld(const float* p, int n) { return n == V::W ? V::load(p) : V::load_n(p, n); }
inline void st(float* p, int n, T v) {
  if (n == V::W)
    V::store(p, v);
  else
    V::store_n(p, v, n);
}

// Integral coordinates i of an axis of `len` pixels -> the pixel each reads
// (always inside [0, len - 1], so every gather index is safe); `inside` is
// false where a constant fill applies.
struct Axis {
  T len, last, period, inv_period, zero;
  FillMode mode;
  Axis(int64_t n, FillMode m)
      : len(V::set1(static_cast<float>(n))),
        last(V::set1(static_cast<float>(n - 1))),
        period(V::set1(static_cast<float>(m == FillMode::wrap ? n : 2 * n))),
        inv_period(V::set1(1.0f / static_cast<float>(m == FillMode::wrap ? n : 2 * n))),
        zero(V::set1(0.0f)),
        mode(m) {}

  T map(T i, M* inside) const {
    *inside = V::all_true();
    switch (mode) {
      case FillMode::reflect:
      case FillMode::wrap: {
        // r = i mod period; the quotient from a reciprocal may be one off: fix it
        T r = V::sub(i, V::mul(period, V::floor(V::mul(i, inv_period))));
        r = V::blend(V::lt(r, zero), V::add(r, period), r);
        r = V::blend(V::ge(r, period), V::sub(r, period), r);
        if (mode == FillMode::reflect)
          r = V::blend(V::ge(r, len), V::sub(V::sub(period, V::set1(1.0f)), r), r);
        return r;
      }
      case FillMode::constant:
        *inside = V::mand(V::ge(i, zero), V::lt(i, len));
        return V::min(V::max(i, zero), last);
      case FillMode::nearest:
      default: return V::min(V::max(i, zero), last);
    }
  }
};

void sample_row(const AugmentSpec& s, const float* img, float* out, int64_t ow, float x0, float y0,
                float ax, float ay) {
  const int64_t C = s.c;
  const Axis X(s.w, s.fill), Y(s.h, s.fill);
  const T vx0 = V::set1(x0), vy0 = V::set1(y0), vax = V::set1(ax), vay = V::set1(ay);
  const T big = V::set1(kBig), nbig = V::set1(-kBig), one = V::set1(1.0f), half = V::set1(0.5f);
  const T fill = V::set1(s.fill_value), iota = V::iota();
  const bool bilinear = s.interp == Interpolation::bilinear;
  const int width = static_cast<int>(s.w);
  alignas(64) V::IdxLane idx[4][V::W];
  alignas(64) float wx[V::W], wy[V::W], in[4][V::W];
  for (int64_t x = 0; x < ow; x += V::W) {
    const int n = ow - x >= V::W ? V::W : static_cast<int>(ow - x);
    const T xv = V::add(iota, V::set1(static_cast<float>(x)));
    // max/min put NaN on the clamp value (their second operand wins)
    const T xs = V::min(V::max(V::fma(vax, xv, vx0), nbig), big);
    const T ys = V::min(V::max(V::fma(vay, xv, vy0), nbig), big);
    if (!bilinear) {
      M mx, my;
      const T cx = X.map(V::floor(V::add(xs, half)), &mx);
      const T cy = Y.map(V::floor(V::add(ys, half)), &my);
      const M m = V::mand(mx, my);
      const TI i = V::madd(V::cvt(cy), width, V::cvt(cx));
      if (C == 1) {
        st(out + x, n, V::gather(img, i, m, fill));
        continue;
      }
      V::store_i(idx[0], i);
      V::store_f(in[0], V::blend(m, one, V::set1(0.0f)));
      for (int l = 0; l < n; ++l) {
        float* o = out + (x + l) * C;
        if (in[0][l] != 0.0f) {
          const float* src = img + static_cast<int64_t>(idx[0][l]) * C;
          for (int64_t ch = 0; ch < C; ++ch) o[ch] = src[ch];
        } else {
          for (int64_t ch = 0; ch < C; ++ch) o[ch] = s.fill_value;
        }
      }
      continue;
    }
    const T fx = V::floor(xs), fy = V::floor(ys);
    const T tx = V::sub(xs, fx), ty = V::sub(ys, fy);
    M mxa, mxb, mya, myb;
    const T xa = X.map(fx, &mxa), xb = X.map(V::add(fx, one), &mxb);
    const T ya = Y.map(fy, &mya), yb = Y.map(V::add(fy, one), &myb);
    const TI ixa = V::cvt(xa), ixb = V::cvt(xb), iya = V::cvt(ya), iyb = V::cvt(yb);
    const TI i00 = V::madd(iya, width, ixa), i01 = V::madd(iya, width, ixb);
    const TI i10 = V::madd(iyb, width, ixa), i11 = V::madd(iyb, width, ixb);
    const M m00 = V::mand(mya, mxa), m01 = V::mand(mya, mxb);
    const M m10 = V::mand(myb, mxa), m11 = V::mand(myb, mxb);
    if (C == 1) {
      const T v00 = V::gather(img, i00, m00, fill), v01 = V::gather(img, i01, m01, fill);
      const T v10 = V::gather(img, i10, m10, fill), v11 = V::gather(img, i11, m11, fill);
      const T top = V::fma(tx, V::sub(v01, v00), v00);
      const T bot = V::fma(tx, V::sub(v11, v10), v10);
      st(out + x, n, V::fma(ty, V::sub(bot, top), top));
      continue;
    }
    V::store_i(idx[0], i00);
    V::store_i(idx[1], i01);
    V::store_i(idx[2], i10);
    V::store_i(idx[3], i11);
    const T zero = V::set1(0.0f);
    V::store_f(in[0], V::blend(m00, one, zero));
    V::store_f(in[1], V::blend(m01, one, zero));
    V::store_f(in[2], V::blend(m10, one, zero));
    V::store_f(in[3], V::blend(m11, one, zero));
    V::store_f(wx, tx);
    V::store_f(wy, ty);
    for (int l = 0; l < n; ++l) {
      const float* p[4];
      for (int t = 0; t < 4; ++t)
        p[t] = in[t][l] != 0.0f ? img + static_cast<int64_t>(idx[t][l]) * C : nullptr;
      float* o = out + (x + l) * C;
      const float a = wx[l], b = wy[l], f = s.fill_value;
      for (int64_t ch = 0; ch < C; ++ch) {
        const float v00 = p[0] ? p[0][ch] : f, v01 = p[1] ? p[1][ch] : f;
        const float v10 = p[2] ? p[2][ch] : f, v11 = p[3] ? p[3][ch] : f;
        const float top = v00 + a * (v01 - v00), bot = v10 + a * (v11 - v10);
        o[ch] = top + b * (bot - top);
      }
    }
  }
}

// fill_index without a division for taps within one image length of the edge.
inline int64_t near_fill_index(int64_t i, int64_t len, FillMode mode, bool* inside) {
  if (i >= 0 && i < len) {
    *inside = true;
    return i;
  }
  if (mode == FillMode::reflect && i >= -len && i < 2 * len) {
    *inside = true;
    return i < 0 ? -1 - i : 2 * len - 1 - i;
  }
  if (mode == FillMode::wrap && i >= -len && i < 2 * len) {
    *inside = true;
    return i < 0 ? i + len : i - len;
  }
  return fill_index(i, len, mode, inside);
}

// A pure shift of a single-channel image (translation; ax = 1, ay = 0),
// bilinear: the source row is fixed and the taps of neighbouring pixels are
// neighbours, so the stretch whose taps all fall inside the image is read
// with plain loads; the edges (fill modes) go through sample_row.
void shift_row(const AugmentSpec& s, const float* img, float* out, int64_t ow, float x0, float y0) {
  const float lim = kBig / 4;
  if (s.c != 1 || s.interp != Interpolation::bilinear || !(std::fabs(x0) < lim) ||
      !(std::fabs(y0) < lim) || ow >= static_cast<int64_t>(lim) ||
      s.w >= static_cast<int64_t>(lim)) {
    sample_row(s, img, out, ow, x0, y0, 1.0f, 0.0f);
    return;
  }
  const float fx = std::floor(x0), fy = std::floor(y0);
  const int64_t sx = static_cast<int64_t>(fx), sy = static_cast<int64_t>(fy);
  // output pixels x in [lo, hi) read taps sx + x and sx + x + 1, both inside
  const int64_t lo = std::min(ow, std::max<int64_t>(0, -sx));
  const int64_t hi = std::max(lo, std::min(ow, s.w - 1 - sx));
  if (hi - lo < V::W) {
    sample_row(s, img, out, ow, x0, y0, 1.0f, 0.0f);
    return;
  }
  bool in_a, in_b;
  const int64_t ra = fill_index(sy, s.h, s.fill, &in_a),
                rb = fill_index(sy + 1, s.h, s.fill, &in_b);
  const float* row_a = in_a ? img + ra * s.w : nullptr;
  const float* row_b = in_b ? img + rb * s.w : nullptr;
  // the edges, pixel by pixel (a few per row: the shift's size)
  const float ftx = x0 - fx, fty = y0 - fy, f = s.fill_value;
  auto edge = [&](int64_t x) {
    bool ia, ib;
    const int64_t ca = near_fill_index(sx + x, s.w, s.fill, &ia);
    const int64_t cb = near_fill_index(sx + x + 1, s.w, s.fill, &ib);
    const float a0 = row_a && ia ? row_a[ca] : f, a1 = row_a && ib ? row_a[cb] : f;
    const float b0 = row_b && ia ? row_b[ca] : f, b1 = row_b && ib ? row_b[cb] : f;
    const float top = a0 + ftx * (a1 - a0), bot = b0 + ftx * (b1 - b0);
    out[x] = top + fty * (bot - top);
  };
  for (int64_t x = 0; x < lo; ++x) edge(x);
  for (int64_t x = hi; x < ow; ++x) edge(x);
  const T tx = V::set1(x0 - fx), ty = V::set1(y0 - fy), fill = V::set1(s.fill_value);
  for (int64_t x = lo; x < hi; x += V::W) {
    const int n = hi - x >= V::W ? V::W : static_cast<int>(hi - x);
    T top = fill, bot = fill;
    if (row_a) {
      const T v0 = ld(row_a + sx + x, n), v1 = ld(row_a + sx + x + 1, n);
      top = V::fma(tx, V::sub(v1, v0), v0);
    }
    if (row_b) {
      const T v0 = ld(row_b + sx + x, n), v1 = ld(row_b + sx + x + 1, n);
      bot = V::fma(tx, V::sub(v1, v0), v0);
    }
    st(out + x, n, V::fma(ty, V::sub(bot, top), top));
  }
}

// Per-position constants a[i % p] over blocks of p values (p is a multiple
// of the channel count, padded to whole vectors by the driver when it can).
template <class F>
inline void by_period(const float* x, float* y, int64_t n, int64_t p, F f) {
  for (int64_t b = 0; b < n; b += p) {
    const int64_t m = n - b < p ? n - b : p;
    for (int64_t j = 0; j < m; j += V::W) {
      const int k = m - j >= V::W ? V::W : static_cast<int>(m - j);
      st(y + b + j, k, f(ld(x + b + j, k), j, k));
    }
  }
}

void affine(const float* x, float* y, int64_t n, const float* a, const float* b, int64_t p) {
  by_period(x, y, n, p,
            [&](T v, int64_t j, int k) { return V::fma(v, ld(a + j, k), ld(b + j, k)); });
}

void normalize(const float* x, float* y, int64_t n, const float* a, const float* b, int64_t p) {
  by_period(x, y, n, p,
            [&](T v, int64_t j, int k) { return V::div(V::sub(v, ld(a + j, k)), ld(b + j, k)); });
}

void contrast(const float* x, float* y, int64_t n, const float* a, int64_t p, float f, float lo,
              float hi) {
  const T vf = V::set1(f), vlo = V::set1(lo), vhi = V::set1(hi);
  by_period(x, y, n, p, [&](T v, int64_t j, int k) {
    const T m = ld(a + j, k);
    return V::min(V::max(V::fma(V::sub(v, m), vf, m), vlo), vhi);
  });
}

}  // namespace

const AugmentKernels kernels = {sample_row, shift_row, affine, normalize, contrast};

}  // namespace CNNX_AUGMENT_NS
}  // namespace cnnx
