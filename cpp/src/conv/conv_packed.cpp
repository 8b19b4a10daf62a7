// ConvPacked: a layer's weights packed once for its forward kernel.
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <vector>

#ifdef CNNX_HAVE_OPENMP
#include <omp.h>
#endif

#include "cnnx/conv.h"
#include "cnnx/threading.h"
#include "conv/conv_direct.h"
#include "conv/conv_internal.h"

namespace cnnx {

struct ConvPacked::Impl {
  enum Algo { conv2d, direct, winograd, narrow } algo = conv2d;
  Conv2dShape s;
  std::vector<conv_detail::DirectLayout> layouts;  // per group (direct; winograd's fallback)
  std::vector<float> wp;                           // packed or transformed weights, per group
  std::vector<int64_t> offsets;                    // each group's first float in wp
  int64_t sU = 0;                                  // winograd: matrix stride of U
  Isa isa = Isa::generic;                          // winograd: the kernels U is laid out for
  std::vector<float> wcopy;  // winograd: the weights, for inputs with NaN/inf; narrow: the weights
  const float* w = nullptr;  // conv2d: the caller's weights; winograd: wcopy
};

namespace {

std::shared_ptr<ConvPacked::Impl> build(const Conv2dShape& shape, const float* w) {
  Conv2dShape s = shape;
  s.N = 1;
  conv_detail::check_or_throw(s);
  if (!w) throw std::invalid_argument("w: expected weights, got a null pointer");
  auto impl = std::make_shared<ConvPacked::Impl>();
  impl->s = s;
  impl->w = w;
  const conv_detail::PatchGeom g0{
      nullptr,      s.H,          s.W,       s.C_in,     0,          s.cin_per_group(),
      s.out_h(),    s.out_w(),    s.KH,      s.KW,       s.stride_h, s.stride_w,
      s.dilation_h, s.dilation_w, s.pad_top, s.pad_left, 0};
  const int64_t cig = s.cin_per_group(), cog = s.cout_per_group();
  if (active_isa() == Isa::avx512 && conv_detail::conv1x1_narrow_ok(s)) {
    impl->algo = ConvPacked::Impl::narrow;
    impl->wcopy.assign(w, w + s.weight_size());
    impl->w = impl->wcopy.data();
    return impl;
  }
  // Winograd on images of 10x10 and more (with the weights transformed once,
  // ResNet-50's 3x3 layers at batch 1 run 2-3x the direct kernel); below,
  // the 4x larger transformed weights cost more than the multiplies saved.
  if (!s.is_depthwise() && conv_detail::winograd_preferred(g0, s.out_h() * s.out_w(), cog) &&
      s.out_h() * s.out_w() >= 100) {
    int64_t sU = 0;
    impl->isa = active_isa();
    const int64_t per =
        conv_detail::winograd_u_floats(impl->isa, static_cast<int>(s.KH), cig, cog, &sU);
    impl->wp.resize(static_cast<size_t>(per * s.groups));
    bool ok = per > 0;
    for (int64_t g = 0; ok && g < s.groups; ++g) {
      impl->offsets.push_back(per * g);
      ok = conv_detail::winograd_pack(impl->isa, static_cast<int>(s.KH), cig, cog, w + g * cog,
                                      s.C_out, impl->wp.data() + per * g);
    }
    if (ok) {
      impl->algo = ConvPacked::Impl::winograd;
      impl->sU = sU;
      impl->wcopy.assign(w, w + s.weight_size());
      impl->w = impl->wcopy.data();
      for (int64_t g = 0; g < s.groups; ++g)
        impl->layouts.push_back(conv_detail::direct_layout(s, g));
      return impl;
    }
    impl->wp.clear();
    impl->offsets.clear();
  }
  if (conv_detail::direct_preferred(s, true)) {
    impl->algo = ConvPacked::Impl::direct;
    int64_t total = 0;
    for (int64_t g = 0; g < s.groups; ++g) {
      impl->layouts.push_back(conv_detail::direct_layout(s, g));
      impl->offsets.push_back(total);
      total += impl->layouts.back().wsize();
    }
    impl->wp.resize(static_cast<size_t>(total));
    for (int64_t g = 0; g < s.groups; ++g)
      conv_detail::direct_pack_weights(impl->layouts[g], w, impl->wp.data() + impl->offsets[g]);
  }
  return impl;
}

// y = act(y * scale + bias + res) over pixels [p0, p1) of a raw convolution.
void finish(const Conv2dShape& s, float* y, const ConvEpilogue& ep, int64_t p0, int64_t p1) {
  const int64_t C = s.C_out;
  for (int64_t p = p0; p < p1; ++p)
    for (int64_t c = 0; c < C; ++c) {
      float v = y[p * C + c];
      if (ep.scale) v *= ep.scale[c];
      if (ep.bias) v += ep.bias[c];
      if (ep.res) v += ep.res[p * C + c];
      if (ep.act == Activation::relu) v = std::max(v, 0.0f);
      y[p * C + c] = v;
    }
}

}  // namespace

ConvPacked::ConvPacked(const Conv2dShape& s, const float* w) : impl_(build(s, w)) {}

void ConvPacked::repack(const float* w) {
  if (!impl_) throw std::logic_error("ConvPacked: repack on an empty object");
  impl_ = build(impl_->s, w);
}

const char* ConvPacked::algorithm() const {
  if (!impl_) return "none";
  switch (impl_->algo) {
    case Impl::direct: return "direct";
    case Impl::winograd: return "winograd";
    case Impl::narrow: return "narrow_1x1";
    default: return "conv2d";
  }
}

const Conv2dShape& ConvPacked::shape() const {
  if (!impl_) throw std::logic_error("ConvPacked: empty object");
  return impl_->s;
}

namespace {

int64_t s_pixels(const Conv2dShape& s) { return s.out_h() * s.out_w(); }

conv_detail::DirectEpi direct_epi(const ConvEpilogue& ep) {
  conv_detail::DirectEpi e;
  e.bias = ep.bias;
  e.scale = ep.scale;
  e.res = ep.res;
  e.relu = ep.act == Activation::relu;
  e.relu_max = ep.act_max;
  return e;
}

// A clamp below +inf is fused by the direct and narrow kernels only.
bool fuses_act_max(const ConvPacked::Impl& m) {
  return m.algo == ConvPacked::Impl::direct || m.algo == ConvPacked::Impl::narrow;
}

void check_act_max(const ConvPacked::Impl& m, const ConvEpilogue& ep) {
  if (ep.act_max < INFINITY && (!fuses_act_max(m) || ep.act != Activation::relu))
    throw std::invalid_argument(
        "ConvEpilogue.act_max: a finite clamp needs act == relu and the direct or narrow_1x1 "
        "algorithm");
}

// Whether all n values are finite: no exponent field all ones (integer
// tests, which the compiler vectorises, unlike a float reduction).
bool all_finite(const float* x, int64_t n) {
  const auto* u = reinterpret_cast<const uint32_t*>(x);
  constexpr uint32_t kExp = 0x7f800000u;
  for (int64_t i0 = 0; i0 < n; i0 += 4096) {
    const int64_t i1 = std::min(n, i0 + 4096);
    uint32_t bad = 0;
    for (int64_t i = i0; i < i1; ++i) bad |= (u[i] & kExp) == kExp;
    if (bad) return false;
  }
  return true;
}

// The narrow 1x1 kernel on part `part` of `parts` of the pixels.
void run_narrow(const ConvPacked::Impl& m, const float* x, int64_t n, float* y,
                const ConvEpilogue& ep, int part, int parts) {
  const Conv2dShape& s = m.s;
  const int64_t P = n * s.H * s.W;
  conv_detail::conv1x1_narrow_avx512(x, s.C_in, s.C_in, m.w, s.C_out, s.C_out, direct_epi(ep), y,
                                     s.C_out, P * part / parts, P * (part + 1) / parts);
}

// Winograd (parts == 0: all of it on threads of its own), or, for an input
// with NaN/inf (which Winograd would spread over whole tiles), the direct
// kernel on the kept weights; every part reaches the same verdict.
void run_winograd(const ConvPacked::Impl& m, const float* x, int64_t n, float* y,
                  const ConvEpilogue& ep, int part, int parts, int threads) {
  const Conv2dShape& s = m.s;
  if (!all_finite(x, n * s.H * s.W * s.C_in)) {
    const conv_detail::DirectEpi e = direct_epi(ep);
    for (size_t g = 0; g < m.layouts.size(); ++g) {
      if (!m.layouts[g].k.fn) continue;
      if (parts > 0)
        conv_detail::direct_run_part(m.layouts[g], nullptr, x, n, y, e, part, parts, m.w);
      else if (threads == 1)
        conv_detail::direct_run_part(m.layouts[g], nullptr, x, n, y, e, 0, 1, m.w);
      else
        conv_detail::direct_conv(m.layouts[g], m.w, x, n, y, e);
    }
    return;
  }
  const int64_t cig = s.cin_per_group(), cog = s.cout_per_group();
  for (int64_t g = 0; g < s.groups; ++g) {
    const conv_detail::PatchGeom geom{x,         s.H,       s.W,       s.C_in,     g * cig, cig,
                                      s.out_h(), s.out_w(), s.KH,      s.KW,       1,       1,
                                      1,         1,         s.pad_top, s.pad_left, 0};
    const int p = threads == 1 && parts == 0 ? 0 : part;
    const int ps = threads == 1 && parts == 0 ? 1 : parts;
    conv_detail::winograd_run_packed(
        m.isa, geom, n * s.out_h() * s.out_w(), cog, m.wp.data() + m.offsets[g], m.sU,
        ep.bias ? ep.bias + g * cog : nullptr, ep.scale ? ep.scale + g * cog : nullptr,
        ep.res ? ep.res + g * cog : nullptr, ep.act, y + g * cog, s.C_out, p, ps);
  }
}

}  // namespace

bool ConvPacked::takes_act_max() const { return impl_ && fuses_act_max(*impl_); }

void ConvPacked::forward(const float* x, int64_t n, float* y, const ConvEpilogue& ep,
                         int threads) const {
  if (!impl_) throw std::logic_error("ConvPacked: forward on an empty object");
  if (n <= 0) return;
  const Impl& m = *impl_;
  check_act_max(m, ep);
  if (m.algo == Impl::winograd) {
    run_winograd(m, x, n, y, ep, 0, 0, threads);
    return;
  }
  if (m.algo == Impl::narrow) {
    const double flops = 2.0 * n * s_pixels(m.s) * m.s.C_in * m.s.C_out;
    int nt = threads > 0 ? std::min(threads, get_num_threads()) : threads_for_flops(flops);
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
    run_narrow(m, x, n, y, ep, omp_get_thread_num(), omp_get_num_threads());
#else
    nt = 1;
    run_narrow(m, x, n, y, ep, 0, 1);
#endif
    return;
  }
  if (m.algo == Impl::direct) {
    const conv_detail::DirectEpi e = direct_epi(ep);
    for (size_t g = 0; g < m.layouts.size(); ++g)
      conv_detail::direct_run(m.layouts[g], m.wp.data() + m.offsets[g], x, n, y, e, threads);
    return;
  }
  Conv2dShape s = m.s;
  s.N = n;
  if (!ep.scale && !ep.res) {
    conv2d_forward(s, x, m.w, ep.bias, y, ep.act);
    return;
  }
  conv2d_forward(s, x, m.w, nullptr, y, Activation::none);
  finish(s, y, ep, 0, n * s.out_h() * s.out_w());
}

void ConvPacked::forward_part(const float* x, int64_t n, float* y, const ConvEpilogue& ep, int part,
                              int parts) const {
  if (!impl_) throw std::logic_error("ConvPacked: forward on an empty object");
  if (n <= 0 || part < 0 || part >= parts) return;
  const Impl& m = *impl_;
  check_act_max(m, ep);
  if (m.algo == Impl::winograd) {
    run_winograd(m, x, n, y, ep, part, parts, 1);
    return;
  }
  if (m.algo == Impl::narrow) {
    run_narrow(m, x, n, y, ep, part, parts);
    return;
  }
  if (m.algo == Impl::direct) {
    const conv_detail::DirectEpi e = direct_epi(ep);
    for (size_t g = 0; g < m.layouts.size(); ++g)
      conv_detail::direct_run_part(m.layouts[g], m.wp.data() + m.offsets[g], x, n, y, e, part,
                                   parts);
    return;
  }
  if (part == 0) forward(x, n, y, ep, 1);
}

}  // namespace cnnx
