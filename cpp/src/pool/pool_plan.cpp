// Window tables for every kind of pooling, argument checks and the per-ISA
// kernel table lookup.
#include <algorithm>
#include <stdexcept>
#include <string>

#include "pool/pool_internal.h"

namespace cnnx {

namespace {

[[noreturn]] void fail(const std::string& msg) { throw std::invalid_argument(msg); }

std::string s(int64_t v) { return std::to_string(v); }

constexpr int64_t kMaxDim = int64_t(1) << 31;

}  // namespace

int64_t pool_output_size(int64_t n, int64_t k, int64_t st, int64_t pad_before, int64_t pad_after) {
  return pool_output_size(n, k, st, pad_before, pad_after, 1, false);
}

int64_t pool_output_size(int64_t n, int64_t k, int64_t st, int64_t pad_before, int64_t pad_after,
                         int64_t dilation, bool ceil_mode) {
  if (k < 1 || st < 1 || dilation < 1 || k >= kMaxDim || dilation >= kMaxDim) return -1;
  const int64_t span = (k - 1) * dilation + 1;
  const int64_t padded = n + pad_before + pad_after;
  if (padded < span) return -1;
  if (!ceil_mode) return (padded - span) / st + 1;
  int64_t out = (padded - span + st - 1) / st + 1;
  if ((out - 1) * st >= n + pad_before) --out;  // the last window must start inside
  return out;
}

void adaptive_window(int64_t i, int64_t n, int64_t out, int64_t* start, int64_t* end) {
  // floor(i*n/out) and ceil((i+1)*n/out), exact in integers (n, out < 2^31).
  *start = (i * n) / out;
  *end = ((i + 1) * n + out - 1) / out;
}

void pool2d_check(const PoolShape& sh, const Pool2dParams& p, int64_t* out_h, int64_t* out_w) {
  pool::check_shape(sh);
  if (p.kernel_h < 1 || p.kernel_w < 1)
    fail("pool_size: expected >= 1, got (" + s(p.kernel_h) + ", " + s(p.kernel_w) + ")");
  if (p.kernel_h >= kMaxDim || p.kernel_w >= kMaxDim || p.kernel_h * p.kernel_w >= kMaxDim)
    fail("pool_size: window of " + s(p.kernel_h) + "x" + s(p.kernel_w) + " is too large");
  if (p.stride_h < 1 || p.stride_w < 1)
    fail("stride: expected >= 1, got (" + s(p.stride_h) + ", " + s(p.stride_w) + ")");
  if (p.dilation_h < 1 || p.dilation_w < 1 || p.dilation_h >= kMaxDim || p.dilation_w >= kMaxDim)
    fail("dilation: expected >= 1, got (" + s(p.dilation_h) + ", " + s(p.dilation_w) + ")");
  if (p.pad_top < 0 || p.pad_bottom < 0 || p.pad_left < 0 || p.pad_right < 0)
    fail("padding: expected >= 0 on every side");
  if (p.pad_top > p.kernel_h / 2 || p.pad_bottom > p.kernel_h / 2 || p.pad_left > p.kernel_w / 2 ||
      p.pad_right > p.kernel_w / 2)
    fail("padding: at most half the pool size on each side (pool " + s(p.kernel_h) + "x" +
         s(p.kernel_w) + " allows " + s(p.kernel_h / 2) + ", " + s(p.kernel_w / 2) + "), got ((" +
         s(p.pad_top) + ", " + s(p.pad_bottom) + "), (" + s(p.pad_left) + ", " + s(p.pad_right) +
         "))");
  const int64_t oh = pool_output_size(sh.h, p.kernel_h, p.stride_h, p.pad_top, p.pad_bottom,
                                      p.dilation_h, p.ceil_mode);
  const int64_t ow = pool_output_size(sh.w, p.kernel_w, p.stride_w, p.pad_left, p.pad_right,
                                      p.dilation_w, p.ceil_mode);
  if (oh < 1 || ow < 1)
    fail("pool_size: the " + s((p.kernel_h - 1) * p.dilation_h + 1) + "x" +
         s((p.kernel_w - 1) * p.dilation_w + 1) + " window is larger than the padded input (" +
         s(sh.h + p.pad_top + p.pad_bottom) + "x" + s(sh.w + p.pad_left + p.pad_right) + ")");
  *out_h = oh;
  *out_w = ow;
}

namespace pool {

void check_shape(const PoolShape& sh) {
  if (sh.n < 0 || sh.c < 0) fail("x: negative batch or channel count");
  if (sh.h < 1 || sh.w < 1)
    fail("x: expected n_H, n_W >= 1, got (" + s(sh.h) + ", " + s(sh.w) + ")");
  if (sh.h >= kMaxDim || sh.w >= kMaxDim) fail("x: n_H or n_W too large");
}

void Axis::finish(bool want_gather) {
  disjoint = true;
  tiles = out > 0 && lo[0] == 0 && hi[out - 1] == in;
  for (int64_t i = 1; i < out; ++i) {
    if (lo[i] < hi[i - 1]) disjoint = false;
    if (lo[i] != hi[i - 1]) tiles = false;
  }
  if (!want_gather) return;
  first.assign(in, 0);
  last.assign(in, 0);
  // lo and hi are nondecreasing: t is read by the outputs i with
  // lo[i] <= t < hi[i], a contiguous range found with two pointers.
  int64_t a = 0, b = 0;
  for (int64_t t = 0; t < in; ++t) {
    while (a < out && hi[a] <= t) ++a;
    while (b < out && lo[b] <= t) ++b;
    first[t] = a;
    last[t] = std::max(a, b);
  }
}

Axis strided_axis(int64_t n, int64_t k, int64_t st, int64_t pad_before, int64_t pad_after,
                  bool count_pad, bool want_gather, int64_t dilation, bool ceil_mode) {
  Axis ax;
  ax.in = n;
  ax.dil = dilation;
  ax.out = pool_output_size(n, k, st, pad_before, pad_after, dilation, ceil_mode);
  ax.lo.resize(ax.out);
  ax.hi.resize(ax.out);
  ax.inv.resize(ax.out);
  for (int64_t i = 0; i < ax.out; ++i) {
    const int64_t start = i * st - pad_before;
    if (dilation == 1) {
      ax.lo[i] = std::max<int64_t>(start, 0);
      ax.hi[i] = std::min<int64_t>(start + k, n);
    } else {
      // the first and one past the last tap inside [0, n) (lo == hi: none)
      const int64_t first =
          start < 0 ? start + (-start + dilation - 1) / dilation * dilation : start;
      const int64_t end = start + (k - 1) * dilation;  // the last tap
      const int64_t last = end < n ? end : start + (n - 1 - start) / dilation * dilation;
      ax.lo[i] = std::min(first, n);
      ax.hi[i] = std::max(ax.lo[i], std::min(last + 1, n));
    }
    // Counting the padding gives the window up to the padded input's end
    // (k, except for a ceil-mode window running past it); otherwise the
    // real pixels (at least one).
    const int64_t div = count_pad ? std::min(start + k, n + pad_after) - start
                                  : std::max<int64_t>(ax.hi[i] - ax.lo[i], 1);
    ax.inv[i] = 1.0f / static_cast<float>(div);
  }
  ax.finish(want_gather);
  return ax;
}

Axis adaptive_axis(int64_t n, int64_t out, bool want_gather) {
  if (out < 1 || out >= kMaxDim) fail("output_size: expected >= 1 and < 2^31, got " + s(out));
  Axis ax;
  ax.in = n;
  ax.out = out;
  ax.lo.resize(out);
  ax.hi.resize(out);
  ax.inv.resize(out);
  for (int64_t i = 0; i < out; ++i) {
    adaptive_window(i, n, out, &ax.lo[i], &ax.hi[i]);
    ax.inv[i] = 1.0f / static_cast<float>(ax.hi[i] - ax.lo[i]);
  }
  ax.finish(want_gather);
  return ax;
}

Plan make_plan(const PoolShape& sh, const Axis& ah, const Axis& aw) {
  Plan p;
  p.n = sh.n;
  p.h = sh.h;
  p.w = sh.w;
  p.c = sh.c;
  p.oh = ah.out;
  p.ow = aw.out;
  p.h_lo = ah.lo.data();
  p.h_hi = ah.hi.data();
  p.w_lo = aw.lo.data();
  p.w_hi = aw.hi.data();
  p.h_inv = ah.inv.data();
  p.w_inv = aw.inv.data();
  p.h_first = ah.first.empty() ? nullptr : ah.first.data();
  p.h_last = ah.last.empty() ? nullptr : ah.last.data();
  p.w_first = aw.first.empty() ? nullptr : aw.first.data();
  p.w_last = aw.last.empty() ? nullptr : aw.last.data();
  p.dil_h = ah.dil;
  p.dil_w = aw.dil;
  return p;
}

const Kernels& kernels_for(Isa isa) {
  switch (isa) {
    case Isa::avx512: return kPoolAvx512;
    case Isa::avx2: return kPoolAvx2;
    default: return kPoolGeneric;
  }
}

}  // namespace pool
}  // namespace cnnx
