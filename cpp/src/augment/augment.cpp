// Preprocessing and augmentation (see cnnx/augment.h): the per-image random
// transforms, the driver that runs each image through the per-ISA loops
// (augment_impl.h), the backward passes (the adjoint of each transform:
// portable loops, since augmentation rarely sits behind a trainable layer)
// and Rescaling / Normalization over flat values.
#include "cnnx/augment.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "cnnx/cpu.h"
#include "cnnx/threading.h"
#include "ops/dropout_kernels.h"
#include "ops/ops_common.h"

namespace {

// The portable loops: one lane.
struct V {
  using T = float;
  using TI = int64_t;
  using M = bool;
  using IdxLane = int64_t;
  static constexpr int W = 1;
  static T set1(float x) { return x; }
  static T iota() { return 0.0f; }
  static T load(const float* p) { return *p; }
  static void store(float* p, T v) { *p = v; }
  static T load_n(const float* p, int) { return *p; }
  static void store_n(float* p, T v, int) { *p = v; }
  static T add(T a, T b) { return a + b; }
  static T sub(T a, T b) { return a - b; }
  static T mul(T a, T b) { return a * b; }
  static T div(T a, T b) { return a / b; }
  // SIMD min/max semantics: the second operand when either is NaN
  static T min(T a, T b) { return a < b ? a : b; }
  static T max(T a, T b) { return a > b ? a : b; }
  static T floor(T a) { return std::floor(a); }
  static T fma(T a, T b, T c) { return a * b + c; }
  static M lt(T a, T b) { return a < b; }
  static M ge(T a, T b) { return a >= b; }
  static M mand(M a, M b) { return a && b; }
  static M all_true() { return true; }
  static T blend(M m, T a, T b) { return m ? a : b; }
  static TI cvt(T a) { return static_cast<int64_t>(a); }
  static TI madd(TI a, int64_t k, TI b) { return a * k + b; }
  static T gather(const float* base, TI idx, M m, T src) { return m ? base[idx] : src; }
  static void store_i(int64_t* p, TI v) { *p = v; }
  static void store_f(float* p, T v) { *p = v; }
};

}  // namespace

#define CNNX_AUGMENT_NS augment_generic
#include "augment/augment_impl.h"
#undef CNNX_AUGMENT_NS

namespace cnnx {

namespace {

constexpr double kPi = 3.14159265358979323846;

const AugmentKernels& kernels_for(const AugmentSpec& s) {
  // the vector loops index images with 32-bit lanes
  if (s.h * s.w * s.c >= (int64_t{1} << 31)) return augment_generic::kernels;
  switch (active_isa()) {
    case Isa::avx512: return augment_avx512::kernels;
    case Isa::avx2: return augment_avx2::kernels;
    default: return augment_generic::kernels;
  }
}

DropoutKeys keys_of(uint64_t seed) {
  // splitmix64's finaliser: nearby seeds give unrelated streams
  uint64_t z = seed + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return DropoutKeys{static_cast<uint32_t>(z), static_cast<uint32_t>(z >> 32)};
}

[[noreturn]] void fail(const std::string& msg) { throw std::invalid_argument("augment: " + msg); }

bool geometric(AugmentKind k) {
  return k == AugmentKind::translate || k == AugmentKind::rotate || k == AugmentKind::zoom;
}

// A crop's inference form reads with bilinear interpolation, edges clamped
// (a resize); the other geometric kinds use the layer's settings.
AugmentSpec sampling_spec(const AugmentSpec& s) {
  AugmentSpec t = s;
  if (s.kind == AugmentKind::crop) {
    t.interp = Interpolation::bilinear;
    t.fill = FillMode::nearest;
  }
  return t;
}

void sample_image(const AugmentKernels& k, const AugmentSpec& s, const double* m, const float* img,
                  float* out) {
  const int64_t row = s.ow * s.c;
  const bool shift = m[0] == 1.0 && m[3] == 0.0;  // a translation
  for (int64_t y = 0; y < s.oh; ++y) {
    const float x0 = static_cast<float>(m[1] * static_cast<double>(y) + m[2]);
    const float y0 = static_cast<float>(m[4] * static_cast<double>(y) + m[5]);
    if (shift)
      k.shift_row(s, img, out + y * row, s.ow, x0, y0);
    else
      k.sample_row(s, img, out + y * row, s.ow, x0, y0, static_cast<float>(m[0]),
                   static_cast<float>(m[3]));
  }
}

void flip_image(const AugmentSpec& s, bool fh, bool fv, const float* x, float* y, bool accumulate) {
  const int64_t W = s.w, C = s.c, row = W * C;
  for (int64_t r = 0; r < s.h; ++r) {
    const float* src = x + (fv ? s.h - 1 - r : r) * row;
    float* dst = y + r * row;
    if (!fh && !accumulate) {
      std::memcpy(dst, src, sizeof(float) * static_cast<size_t>(row));
      continue;
    }
    for (int64_t i = 0; i < W; ++i) {
      const float* sp = src + (fh ? W - 1 - i : i) * C;
      float* dp = dst + i * C;
      if (accumulate)
        for (int64_t c = 0; c < C; ++c) dp[c] += sp[c];
      else
        for (int64_t c = 0; c < C; ++c) dp[c] = sp[c];
    }
  }
}

// Per-channel means of one image (double sums).
void channel_means(const float* x, int64_t pixels, int64_t C, std::vector<float>& mean) {
  std::vector<double> sum(C, 0.0);
  for (int64_t p = 0; p < pixels; ++p)
    for (int64_t c = 0; c < C; ++c) sum[c] += x[p * C + c];
  mean.resize(C);
  for (int64_t c = 0; c < C; ++c)
    mean[c] = static_cast<float>(sum[c] / static_cast<double>(pixels));
}

// Constants of period p = (inner * channels), repeated to a whole number of
// vectors when that stays small: a[j] = src[(j / inner) % channels].
std::vector<float> expand(const float* src, int64_t channels, int64_t inner, int64_t* period) {
  const int64_t p0 = channels * inner;
  const int64_t l = p0 / std::gcd(p0, int64_t{16}) * 16;
  const int64_t p = l <= 65536 ? l : p0;
  std::vector<float> a(p);
  for (int64_t j = 0; j < p; ++j) a[j] = src[(j / inner) % channels];
  *period = p;
  return a;
}

void check_channels(int64_t n, int64_t channels, int64_t inner) {
  if (n < 0 || channels < 1 || inner < 1) throw std::invalid_argument("channels: must be >= 1");
}

// The adjoint of sample_image: dx[tap] += weight * dy (portable).
void sample_adjoint(const AugmentSpec& s, const double* m, const float* dy, float* dx) {
  const int64_t C = s.c;
  const bool bilinear = s.interp == Interpolation::bilinear;
  const float kBig = 4194304.0f;
  auto clampc = [&](float v) { return v > -kBig ? (v < kBig ? v : kBig) : -kBig; };
  for (int64_t y = 0; y < s.oh; ++y) {
    const float x0 = static_cast<float>(m[1] * static_cast<double>(y) + m[2]);
    const float y0 = static_cast<float>(m[4] * static_cast<double>(y) + m[5]);
    const float ax = static_cast<float>(m[0]), ay = static_cast<float>(m[3]);
    for (int64_t x = 0; x < s.ow; ++x) {
      const float xf = static_cast<float>(x);
      const float xs = clampc(ax * xf + x0), ys = clampc(ay * xf + y0);
      const float* g = dy + (y * s.ow + x) * C;
      auto add = [&](int64_t ix, int64_t iy, float w) {
        bool inx, iny;
        const int64_t cx = fill_index(ix, s.w, s.fill, &inx);
        const int64_t cy = fill_index(iy, s.h, s.fill, &iny);
        if (!inx || !iny || w == 0.0f) return;
        float* d = dx + (cy * s.w + cx) * C;
        for (int64_t c = 0; c < C; ++c) d[c] += w * g[c];
      };
      if (!bilinear) {
        add(static_cast<int64_t>(std::floor(xs + 0.5f)),
            static_cast<int64_t>(std::floor(ys + 0.5f)), 1.0f);
        continue;
      }
      const float fx = std::floor(xs), fy = std::floor(ys);
      const float tx = xs - fx, ty = ys - fy;
      const int64_t ix = static_cast<int64_t>(fx), iy = static_cast<int64_t>(fy);
      add(ix, iy, (1.0f - tx) * (1.0f - ty));
      add(ix + 1, iy, tx * (1.0f - ty));
      add(ix, iy + 1, (1.0f - tx) * ty);
      add(ix + 1, iy + 1, tx * ty);
    }
  }
}

template <class F>
void per_image(int64_t n, double flops_per_image, F f) {
  const int nt = threads_for_flops(flops_per_image * static_cast<double>(n));
  ops_detail::parallel_range(
      n, std::max(1, nt),
      [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) f(i);
      },
      1);
}

}  // namespace

void augment_check(const AugmentSpec& s) {
  const int k = static_cast<int>(s.kind), f = static_cast<int>(s.fill),
            ip = static_cast<int>(s.interp);
  if (k < 0 || k > 5) fail("unknown kind");
  if (f < 0 || f > 3) fail("unknown fill mode");
  if (ip < 0 || ip > 1) fail("unknown interpolation");
  if (s.h < 1 || s.w < 1 || s.c < 1) fail("the image shape must be >= 1 in every axis");
  if (s.h > (int64_t{1} << 22) || s.w > (int64_t{1} << 22))
    fail("images larger than 2^22 pixels a side are not supported");
  if (s.kind == AugmentKind::crop) {
    if (s.oh < 1 || s.ow < 1 || s.oh > s.h || s.ow > s.w)
      fail("the crop (" + std::to_string(s.oh) + ", " + std::to_string(s.ow) +
           ") must fit in the image (" + std::to_string(s.h) + ", " + std::to_string(s.w) + ")");
  } else if (s.oh != s.h || s.ow != s.w) {
    fail("only a crop changes the image size");
  }
  for (int a = 0; a < 2; ++a)
    if (!std::isfinite(s.lo[a]) || !std::isfinite(s.hi[a]) || s.lo[a] > s.hi[a])
      fail("ranges must be finite with lo <= hi");
  if (s.kind == AugmentKind::zoom && (s.lo[0] <= -1.0f || s.lo[1] <= -1.0f))
    fail("zoom ranges must stay above -1");
  if (s.kind == AugmentKind::contrast &&
      (!(s.value_lo < s.value_hi) || !std::isfinite(s.value_lo) || !std::isfinite(s.value_hi) ||
       s.lo[0] < 0.0f))
    fail("contrast needs factors >= 0 and a value range lo < hi");
  if (!std::isfinite(s.fill_value)) fail("fill_value must be finite");
}

double augment_uniform(uint64_t seed, int64_t index, int k) {
  const uint32_t bits =
      dropout_hash(keys_of(seed), static_cast<uint64_t>(index) * 16u + static_cast<uint64_t>(k));
  return static_cast<double>(bits >> 8) * (1.0 / 16777216.0);
}

ImageTransform augment_transform(const AugmentSpec& s, uint64_t seed, int64_t index,
                                 bool training) {
  ImageTransform t;
  const double H1 = static_cast<double>(s.h - 1), W1 = static_cast<double>(s.w - 1);
  auto draw = [&](int axis, int k) {
    const double lo = s.lo[axis], hi = s.hi[axis];
    return lo + (hi - lo) * augment_uniform(seed, index, k);
  };
  if (!training) {
    if (s.kind == AugmentKind::crop) {
      // Keras's smart_resize: the largest centred window of the output's
      // aspect ratio, resized with half-pixel centres.
      const int64_t ch =
          std::min(s.h, static_cast<int64_t>(static_cast<double>(s.w * s.oh) / s.ow));
      const int64_t cw =
          std::min(s.w, static_cast<int64_t>(static_cast<double>(s.h * s.ow) / s.oh));
      const int64_t top = (s.h - ch) / 2, left = (s.w - cw) / 2;
      const double sy = static_cast<double>(ch) / s.oh, sx = static_cast<double>(cw) / s.ow;
      t.m[0] = sx;
      t.m[1] = 0.0;
      t.m[2] = 0.5 * sx - 0.5 + static_cast<double>(left);
      t.m[3] = 0.0;
      t.m[4] = sy;
      t.m[5] = 0.5 * sy - 0.5 + static_cast<double>(top);
      t.top = top;
      t.left = left;
    }
    return t;
  }
  switch (s.kind) {
    case AugmentKind::flip:
      t.flip_h = s.horizontal && augment_uniform(seed, index, 0) < 0.5;
      t.flip_v = s.vertical && augment_uniform(seed, index, 1) < 0.5;
      break;
    case AugmentKind::translate: {
      const double dy = draw(0, 0) * static_cast<double>(s.h);
      const double dx = draw(1, 1) * static_cast<double>(s.w);
      const double m[6] = {1.0, 0.0, -dx, 0.0, 1.0, -dy};
      std::copy(m, m + 6, t.m);
      break;
    }
    case AugmentKind::rotate: {
      const double a = draw(0, 0) * 2.0 * kPi, c = std::cos(a), sn = std::sin(a);
      const double m[6] = {c,  -sn, (W1 - (c * W1 - sn * H1)) / 2.0,
                           sn, c,   (H1 - (sn * W1 + c * H1)) / 2.0};
      std::copy(m, m + 6, t.m);
      break;
    }
    case AugmentKind::zoom: {
      const double zy = 1.0 + draw(0, 0);
      const double zx = s.same_zoom ? zy : 1.0 + draw(1, 1);
      const double m[6] = {zx, 0.0, W1 / 2.0 * (1.0 - zx), 0.0, zy, H1 / 2.0 * (1.0 - zy)};
      std::copy(m, m + 6, t.m);
      break;
    }
    case AugmentKind::crop: {
      const int64_t rh = s.h - s.oh + 1, rw = s.w - s.ow + 1;
      t.top = std::min(rh - 1, static_cast<int64_t>(augment_uniform(seed, index, 0) * rh));
      t.left = std::min(rw - 1, static_cast<int64_t>(augment_uniform(seed, index, 1) * rw));
      break;
    }
    case AugmentKind::contrast: t.factor = draw(0, 0); break;
  }
  return t;
}

void augment_forward(const AugmentSpec& s, const float* x, float* y, int64_t n, uint64_t seed,
                     int64_t first, bool training) {
  augment_check(s);
  if (n <= 0) return;
  const AugmentKernels& k = kernels_for(s);
  const AugmentSpec ss = sampling_spec(s);
  const int64_t in_img = s.h * s.w * s.c, out_img = s.oh * s.ow * s.c;
  const bool identity = !training && s.kind != AugmentKind::crop;
  if (identity) {
    std::memcpy(y, x, sizeof(float) * static_cast<size_t>(n * in_img));
    return;
  }
  const double cost = geometric(s.kind) || (s.kind == AugmentKind::crop && !training) ? 24.0 : 4.0;
  per_image(n, cost * static_cast<double>(out_img), [&](int64_t i) {
    const float* xi = x + i * in_img;
    float* yi = y + i * out_img;
    const ImageTransform t = augment_transform(s, seed, first + i, training);
    switch (s.kind) {
      case AugmentKind::flip: flip_image(s, t.flip_h, t.flip_v, xi, yi, false); return;
      case AugmentKind::crop:
        if (!training) {
          sample_image(k, ss, t.m, xi, yi);
          return;
        }
        for (int64_t r = 0; r < s.oh; ++r)
          std::memcpy(yi + r * s.ow * s.c, xi + ((t.top + r) * s.w + t.left) * s.c,
                      sizeof(float) * static_cast<size_t>(s.ow * s.c));
        return;
      case AugmentKind::contrast: {
        std::vector<float> mean;
        channel_means(xi, s.h * s.w, s.c, mean);
        int64_t p;
        const std::vector<float> a = expand(mean.data(), s.c, 1, &p);
        k.contrast(xi, yi, in_img, a.data(), p, static_cast<float>(t.factor), s.value_lo,
                   s.value_hi);
        return;
      }
      default: sample_image(k, ss, t.m, xi, yi); return;
    }
  });
}

void augment_backward(const AugmentSpec& s, const float* dy, const float* y, float* dx, int64_t n,
                      uint64_t seed, int64_t first, bool training, bool accumulate) {
  augment_check(s);
  if (n <= 0) return;
  const int64_t in_img = s.h * s.w * s.c, out_img = s.oh * s.ow * s.c;
  if (!training && s.kind != AugmentKind::crop) {  // the identity
    for (int64_t i = 0; i < n * in_img; ++i) dx[i] = accumulate ? dx[i] + dy[i] : dy[i];
    return;
  }
  if (s.kind == AugmentKind::contrast && !y)
    throw std::invalid_argument("y: a contrast's backward needs its output");
  const AugmentSpec ss = sampling_spec(s);
  per_image(n, 30.0 * static_cast<double>(out_img), [&](int64_t i) {
    const float* g = dy + i * out_img;
    float* d = dx + i * in_img;
    const ImageTransform t = augment_transform(s, seed, first + i, training);
    if (s.kind == AugmentKind::flip) {  // its own inverse
      flip_image(s, t.flip_h, t.flip_v, g, d, accumulate);
      return;
    }
    if (s.kind == AugmentKind::contrast) {
      // y = clip(f x + (1 - f) mean(x)): dx = f g + (1 - f) mean(g), g = dy where not clipped
      const int64_t P = s.h * s.w, C = s.c;
      const float* yi = y + i * out_img;
      std::vector<double> sum(C, 0.0);
      std::vector<float> gm(in_img);
      for (int64_t j = 0; j < in_img; ++j) {
        gm[j] = yi[j] > s.value_lo && yi[j] < s.value_hi ? g[j] : 0.0f;
        sum[j % C] += gm[j];
      }
      const float f = static_cast<float>(t.factor);
      for (int64_t j = 0; j < in_img; ++j) {
        const float v =
            f * gm[j] + (1.0f - f) * static_cast<float>(sum[j % C] / static_cast<double>(P));
        d[j] = accumulate ? d[j] + v : v;
      }
      return;
    }
    if (!accumulate) std::fill(d, d + in_img, 0.0f);
    if (s.kind == AugmentKind::crop && training) {
      for (int64_t r = 0; r < s.oh; ++r) {
        float* dr = d + ((t.top + r) * s.w + t.left) * s.c;
        const float* gr = g + r * s.ow * s.c;
        for (int64_t j = 0; j < s.ow * s.c; ++j) dr[j] += gr[j];
      }
      return;
    }
    sample_adjoint(ss, t.m, g, d);
  });
}

void rescale_forward(const float* x, float* y, int64_t n, int64_t channels, int64_t inner,
                     const float* scale, const float* offset) {
  check_channels(n, channels, inner);
  int64_t p;
  const std::vector<float> a = expand(scale, channels, inner, &p);
  const std::vector<float> b = expand(offset, channels, inner, &p);
  AugmentSpec any;
  any.h = any.w = any.c = 1;
  const AugmentKernels& k = kernels_for(any);
  const int nt = ops_detail::threads_for_bytes(8.0 * n);
  ops_detail::parallel_range(
      n, nt,
      [&](int64_t lo, int64_t hi) { k.affine(x + lo, y + lo, hi - lo, a.data(), b.data(), p); }, p);
}

void rescale_backward(const float* dy, float* dx, int64_t n, int64_t channels, int64_t inner,
                      const float* scale, bool accumulate) {
  check_channels(n, channels, inner);
  for (int64_t i = 0; i < n; ++i) {
    const float v = dy[i] * scale[(i / inner) % channels];
    dx[i] = accumulate ? dx[i] + v : v;
  }
}

namespace {
std::vector<float> denominators(const float* var, int64_t channels, float eps) {
  std::vector<float> d(channels);
  for (int64_t c = 0; c < channels; ++c) d[c] = std::max(std::sqrt(var[c]), eps);
  return d;
}
}  // namespace

void normalize_forward(const float* x, float* y, int64_t n, int64_t channels, int64_t inner,
                       const float* mean, const float* var, float eps) {
  check_channels(n, channels, inner);
  const std::vector<float> d = denominators(var, channels, eps);
  int64_t p;
  const std::vector<float> a = expand(mean, channels, inner, &p);
  const std::vector<float> b = expand(d.data(), channels, inner, &p);
  AugmentSpec any;
  any.h = any.w = any.c = 1;
  const AugmentKernels& k = kernels_for(any);
  const int nt = ops_detail::threads_for_bytes(8.0 * n);
  ops_detail::parallel_range(
      n, nt,
      [&](int64_t lo, int64_t hi) { k.normalize(x + lo, y + lo, hi - lo, a.data(), b.data(), p); },
      p);
}

void normalize_backward(const float* dy, float* dx, int64_t n, int64_t channels, int64_t inner,
                        const float* var, float eps, bool accumulate) {
  check_channels(n, channels, inner);
  const std::vector<float> d = denominators(var, channels, eps);
  for (int64_t i = 0; i < n; ++i) {
    const float v = dy[i] / d[(i / inner) % channels];
    dx[i] = accumulate ? dx[i] + v : v;
  }
}

}  // namespace cnnx
