// Indirect GEMM convolution kernel (XNNPACK style), included by one file per
// ISA and compiled with that ISA's flags. GCC vector extensions give one
// source for AVX-512 (16 lanes), AVX2 (8 lanes) and narrower tiles.
//
// A tile is R output pixels x (NV*V) output channels held in registers. For
// each run of contiguous patch values (one tap's channels, or one filter row
// kh with all its kw taps when they are adjacent in memory), every pixel has
// a pointer straight into the NHWC image (or into a zero / edge buffer), and
// the inner loop broadcasts one value per pixel against NV weight vectors:
// no patch matrix and no A packing at all.
#pragma once
#include <algorithm>
#include <cstring>

#include "conv/conv_internal.h"

namespace cnnx {
namespace conv_detail {
// Internal linkage: every ISA's file compiles its own copy (shared template
// instances could be resolved to the AVX-512 build on an AVX2 CPU).
namespace {

template <class VT, int V, int NV, int R>
void igemm_tiles(const IgemmProblem& pb, int64_t m_begin, int64_t m_end, int64_t cb,
                 float* scratch) {
  const PatchGeom& g = pb.g;
  constexpr int CW = NV * V;
  const int64_t ohw = g.OH * g.OW;
  const int64_t img = g.H * g.W * g.C;
  const int64_t seg_len = pb.merge_kw ? g.KW * g.Cg : g.Cg;
  const int64_t nseg = pb.merge_kw ? g.KH : g.KH * g.KW;
  const float* zeros = scratch;     // seg_len zeros
  float* edge = scratch + seg_len;  // R * seg_len, rows crossing the image border
  const float* wpb = pb.wp + cb * pb.K * CW;
  const int64_t co0 = cb * CW;
  const int64_t cvalid = std::min<int64_t>(CW, pb.Nout - co0);

  for (int64_t m0 = m_begin; m0 < m_end; m0 += R) {
    const int rows = static_cast<int>(std::min<int64_t>(R, m_end - m0));
    int64_t ih0[R], iw0[R];
    const float* base[R];
    {
      int64_t n = m0 / ohw, rem = m0 % ohw;
      int64_t oh = rem / g.OW, ow = rem % g.OW;
      for (int r = 0; r < R; ++r) {
        if (r < rows) {
          ih0[r] = oh * g.sh - g.pt;
          iw0[r] = ow * g.sw - g.pl;
          base[r] = g.x + n * img + g.c0;
          if (++ow == g.OW) {
            ow = 0;
            if (++oh == g.OH) {
              oh = 0;
              ++n;
            }
          }
        } else {
          ih0[r] = -(int64_t{1} << 40);  // out of the image: reads zeros
          iw0[r] = 0;
          base[r] = nullptr;
        }
      }
    }
    VT acc[R][NV];
#pragma GCC unroll 32
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[r][j] = VT{};

    for (int64_t s = 0; s < nseg; ++s) {
      const int64_t kh = pb.merge_kw ? s : s / g.KW;
      const int64_t kw = pb.merge_kw ? 0 : s % g.KW;
      const float* ap[R];
      for (int r = 0; r < R; ++r) {
        const int64_t ih = ih0[r] + kh * g.dh;
        const int64_t iw = iw0[r] + kw * g.dw;
        if (ih < 0 || ih >= g.H) {
          ap[r] = zeros;
        } else if (!pb.merge_kw) {
          ap[r] = (iw >= 0 && iw < g.W) ? base[r] + (ih * g.W + iw) * g.C : zeros;
        } else if (iw >= 0 && iw + (g.KW - 1) < g.W) {
          ap[r] = base[r] + (ih * g.W + iw) * g.C;  // the whole row of taps is inside
        } else {
          float* e = edge + r * seg_len;  // assemble the row with zeros outside
          for (int64_t t = 0; t < g.KW; ++t) {
            const int64_t x = iw + t;
            if (x >= 0 && x < g.W)
              std::memcpy(e + t * g.Cg, base[r] + (ih * g.W + x) * g.C, sizeof(float) * g.Cg);
            else
              std::memset(e + t * g.Cg, 0, sizeof(float) * g.Cg);
          }
          ap[r] = e;
        }
      }
      bool any = false;  // a tap outside the image for the whole tile adds nothing
      for (int r = 0; r < R; ++r) any |= ap[r] != zeros;
      if (!any) continue;
      const float* b = wpb + s * seg_len * CW;
      for (int64_t l = 0; l < seg_len; ++l, b += CW) {
        VT bv[NV];
        std::memcpy(bv, b, sizeof(bv));
#pragma GCC unroll 32
        for (int r = 0; r < R; ++r) {
          const VT a = ap[r][l] - VT{};  // a broadcast (x - 0 folds, x + 0 does not)
#pragma GCC unroll 4
          for (int j = 0; j < NV; ++j) acc[r][j] += a * bv[j];
        }
      }
    }

    // Epilogue: bias, activation, store the valid pixels and channels.
    VT bias[NV];
    for (int j = 0; j < NV; ++j) bias[j] = VT{};
    if (pb.bias) {
      float tmp[CW] = {};
      std::memcpy(tmp, pb.bias + co0, sizeof(float) * cvalid);
      std::memcpy(bias, tmp, sizeof(tmp));
    }
    // Spill through a buffer with constant indices only, so that acc itself
    // never needs an address and stays in registers in the loop above.
    VT res[R][NV];
#pragma GCC unroll 32
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) res[r][j] = acc[r][j] + bias[j];
    for (int r = 0; r < rows; ++r) {
      VT v[NV];
      for (int j = 0; j < NV; ++j) {
        v[j] = res[r][j];
        if (pb.act == Activation::relu) v[j] = v[j] < VT{} ? VT{} : v[j];  // NaN stays NaN
      }
      float* o = pb.out + (m0 + r) * pb.ldo + co0;
      if (cvalid == CW)
        std::memcpy(o, v, sizeof(v));
      else
        std::memcpy(o, v, sizeof(float) * cvalid);
    }
  }
}

}  // namespace
}  // namespace conv_detail
}  // namespace cnnx
