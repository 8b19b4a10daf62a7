// ConvPacked: a layer's weights packed once for its forward kernel.
#include <algorithm>
#include <stdexcept>
#include <vector>

#include "cnnx/conv.h"
#include "conv/conv_direct.h"
#include "conv/conv_internal.h"

namespace cnnx {

struct ConvPacked::Impl {
  Conv2dShape s;
  bool direct = false;
  std::vector<conv_detail::DirectLayout> layouts;  // per group
  std::vector<float> wp;                           // packed weights, group after group
  std::vector<int64_t> offsets;                    // each group's first float in wp
  const float* w = nullptr;                        // "conv2d": the caller's weights
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
  impl->direct = conv_detail::direct_preferred(s, true);
  if (impl->direct) {
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
  return impl_ && impl_->direct ? "direct" : "conv2d";
}

const Conv2dShape& ConvPacked::shape() const {
  if (!impl_) throw std::logic_error("ConvPacked: empty object");
  return impl_->s;
}

void ConvPacked::forward(const float* x, int64_t n, float* y, const ConvEpilogue& ep,
                         int threads) const {
  if (!impl_) throw std::logic_error("ConvPacked: forward on an empty object");
  if (n <= 0) return;
  const Impl& m = *impl_;
  if (m.direct) {
    conv_detail::DirectEpi e;
    e.bias = ep.bias;
    e.scale = ep.scale;
    e.res = ep.res;
    e.relu = ep.act == Activation::relu;
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

void ConvPacked::forward_part(const float* x, int64_t n, float* y, const ConvEpilogue& ep,
                              int part, int parts) const {
  if (!impl_) throw std::logic_error("ConvPacked: forward on an empty object");
  if (n <= 0 || part < 0 || part >= parts) return;
  const Impl& m = *impl_;
  if (m.direct) {
    conv_detail::DirectEpi e;
    e.bias = ep.bias;
    e.scale = ep.scale;
    e.res = ep.res;
    e.relu = ep.act == Activation::relu;
    for (size_t g = 0; g < m.layouts.size(); ++g)
      conv_detail::direct_run_part(m.layouts[g], m.wp.data() + m.offsets[g], x, n, y, e, part,
                                   parts);
    return;
  }
  if (part == 0) forward(x, n, y, ep, 1);
}

}  // namespace cnnx
