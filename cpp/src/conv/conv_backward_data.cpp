// Backward-data: dx = dL/dx.
//
// Stride 1: dx is itself a convolution of dy with the spatially flipped,
// in/out-transposed filter and "full" padding ((K-1)*d - p, possibly
// negative), so it runs on the same implicit GEMM as the forward pass.
// Stride > 1: by stride phases on the direct kernel (conv_direct_dx.cpp)
// when its tile fits the channels; else per image, GEMM tiles dcol =
// dy_tile x W^T into a thread-local buffer, scattered (col2im) into that
// image's dx. Threads own whole images, so the scatter needs no atomics.
#include <algorithm>
#include <cstring>
#include <vector>

#include "cnnx/threading.h"
#include "common/scratch.h"
#include "conv/conv_direct.h"
#include "conv/conv_internal.h"

namespace cnnx {

using conv_detail::PatchGeom;

namespace {

void stride1(const Conv2dShape& s, const float* dy, const float* w, float* dx) {
  const int64_t OH = s.out_h(), OW = s.out_w();
  const int64_t cig = s.cin_per_group(), cog = s.cout_per_group();
  const int64_t KH = s.KH, KW = s.KW;
  // wf[g][kh'][kw'][co][ci] = w[KH-1-kh'][KW-1-kw'][ci][g*cog + co], in
  // 16x16 blocks (a plain loop writes with a stride of cig floats: slow for
  // wide layers).
  float* wf = thread_scratch(ScratchSlot::conv_3, static_cast<size_t>(s.weight_size()));
  const int64_t gsz = KH * KW * cog * cig;
  const int64_t units = s.groups * KH * KW;
  auto flip = [&](int64_t u) {
    const int64_t g = u / (KH * KW), kh = (u / KW) % KH, kw = u % KW;
    const float* src = w + ((KH - 1 - kh) * KW + (KW - 1 - kw)) * cig * s.C_out + g * cog;
    float* d = wf + g * gsz + (kh * KW + kw) * cog * cig;
    if (active_isa() == Isa::avx512 && cig >= 16 && cog >= 16) {
      conv_detail::transpose_avx512(src, s.C_out, cig, cog, d, cig);
      return;
    }
    for (int64_t c0 = 0; c0 < cig; c0 += 16)
      for (int64_t o0 = 0; o0 < cog; o0 += 16) {
        const int64_t c1 = std::min(cig, c0 + 16), o1 = std::min(cog, o0 + 16);
        for (int64_t ci = c0; ci < c1; ++ci)
          for (int64_t co = o0; co < o1; ++co) d[co * cig + ci] = src[ci * s.C_out + co];
      }
  };
  const int nt = threads_for_flops(static_cast<double>(s.weight_size()) * 8.0);
  if (nt > 1 && units >= nt) {
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel for num_threads(nt) schedule(static)
#endif
    for (int64_t u = 0; u < units; ++u) flip(u);
  } else {
    for (int64_t u = 0; u < units; ++u) flip(u);
  }
  // LeNet-like 5x5 "valid" layers: Winograd over dy's tiles (falls through
  // on NaN/inf).
  if (conv_detail::winograd_dx_preferred(s) && conv_detail::winograd_dx(s, dy, wf, dx)) return;
  for (int64_t g = 0; g < s.groups; ++g) {
    PatchGeom geom{dy,
                   OH,
                   OW,
                   s.C_out,
                   g * cog,
                   cog,
                   s.H,
                   s.W,
                   KH,
                   KW,
                   1,
                   1,
                   s.dilation_h,
                   s.dilation_w,
                   (KH - 1) * s.dilation_h - s.pad_top,
                   (KW - 1) * s.dilation_w - s.pad_left,
                   0};
    conv_detail::implicit_gemm(geom, s.N * s.H * s.W, cig, wf + g * gsz, cig, nullptr,
                               Activation::none, dx + g * cig, s.C_in);
  }
}

// One image: dx_n = col2im(dy_n x W^T), tile by tile. gemm_threads as in sgemm.
void col2im_image(const Conv2dShape& s, const float* dy_n, const float* w, float* dx_n,
                  int gemm_threads) {
  const int64_t OH = s.out_h(), OW = s.out_w(), Q = OH * OW;
  const int64_t cig = s.cin_per_group(), cog = s.cout_per_group();
  const int64_t Kg = s.KH * s.KW * cig;
  const int64_t tile = std::max<int64_t>(8, std::min<int64_t>(Q, (int64_t{1} << 16) / Kg));
  float* dcol = thread_scratch(ScratchSlot::conv_1, static_cast<size_t>(tile * Kg));
  std::memset(dx_n, 0, sizeof(float) * s.H * s.W * s.C_in);
  for (int64_t g = 0; g < s.groups; ++g) {
    for (int64_t q0 = 0; q0 < Q; q0 += tile) {
      const int64_t q1 = std::min(Q, q0 + tile);
      sgemm(Trans::N, Trans::T, q1 - q0, Kg, cog, 1.0f, dy_n + q0 * s.C_out + g * cog, s.C_out,
            w + g * cog, s.C_out, 0.0f, dcol, Kg, {}, gemm_threads);
      for (int64_t q = q0; q < q1; ++q) {
        const int64_t oh = q / OW, ow = q % OW;
        const float* src = dcol + (q - q0) * Kg;
        for (int64_t kh = 0; kh < s.KH; ++kh) {
          const int64_t ih = oh * s.stride_h - s.pad_top + kh * s.dilation_h;
          if (ih < 0 || ih >= s.H) continue;
          for (int64_t kw = 0; kw < s.KW; ++kw) {
            const int64_t iw = ow * s.stride_w - s.pad_left + kw * s.dilation_w;
            if (iw < 0 || iw >= s.W) continue;
            float* d = dx_n + (ih * s.W + iw) * s.C_in + g * cig;
            const float* c = src + (kh * s.KW + kw) * cig;
            for (int64_t ci = 0; ci < cig; ++ci) d[ci] += c[ci];
          }
        }
      }
    }
  }
}

}  // namespace

void conv2d_backward_data(const Conv2dShape& s, const float* dy, const float* w, float* dx) {
  conv_detail::check_or_throw(s);
  if (s.N == 0) return;
  if (s.is_depthwise()) {
    conv_detail::depthwise_backward_data(s, dy, w, dx);
    return;
  }
  if (s.stride_h == 1 && s.stride_w == 1) {
    stride1(s, dy, w, dx);
    return;
  }
  if (conv_detail::direct_dx_preferred(s)) {
    conv_detail::direct_backward_data(s, dy, w, dx);
    return;
  }
  const int64_t OH = s.out_h(), OW = s.out_w();
  const int64_t in_img = s.H * s.W * s.C_in, out_img = OH * OW * s.C_out;
  const double flops = 2.0 * s.N * OH * OW * s.KH * s.KW * s.cin_per_group() * s.C_out;
  const int nt = threads_for_flops(flops);
  if (nt > 1 && s.N >= nt) {
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
#endif
    for (int64_t n = 0; n < s.N; ++n) col2im_image(s, dy + n * out_img, w, dx + n * in_img, 1);
  } else {
    for (int64_t n = 0; n < s.N; ++n) col2im_image(s, dy + n * out_img, w, dx + n * in_img, 0);
  }
}

}  // namespace cnnx
