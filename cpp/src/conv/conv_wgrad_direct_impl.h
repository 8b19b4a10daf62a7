// Direct backward-weights kernel for narrow layers, included by one file per
// ISA (GCC vector extensions, compiled with that ISA's flags).
//
//   dwT[co][k] += sum over pixels p of dy[p][co] * patch[p][k]
//
// Patch values are read straight from the NHWC image: for each output pixel
// a filter row's taps (kw, ci) form one contiguous run when dw == 1 and the
// layer has one group, so a vector of V consecutive k is one load. A register
// tile is CR output channels x NB k-vectors; each pixel costs NB loads, CR
// broadcasts of dy and CR*NB FMAs. Runs that cross the image border are
// assembled with zeros in a small buffer; the interior needs no checks.
#pragma once
#include <algorithm>
#include <cstring>

#include "conv/conv_internal.h"

namespace cnnx {
namespace conv_detail {
// Internal linkage: every ISA's file compiles its own copy (shared template
// instances could be resolved to the AVX-512 build on an AVX2 CPU).
namespace {

template <class VT, int V, int CR, int NB>
void wgrad_direct_tiles(const WgradProblem& pb, int64_t p_begin, int64_t p_end, float* dwT,
                        float* scratch) {
  const PatchGeom& g = pb.g;
  const int64_t L = pb.merge_kw ? g.KW * g.Cg : g.Cg;  // run length
  const int64_t nseg = pb.merge_kw ? g.KH : g.KH * g.KW;
  const int64_t nv = ceil_div(L, V);  // vectors per run
  const int64_t nkv = nseg * nv;
  const int64_t K = nseg * L;
  const int64_t ohw = g.OH * g.OW;
  const int64_t img = g.H * g.W * g.C;
  float* edge = scratch;  // NB runs of nv*V floats

  for (int64_t c0 = 0; c0 < pb.Nout; c0 += CR) {
    const int ncr = static_cast<int>(std::min<int64_t>(CR, pb.Nout - c0));
    int off[CR];
    for (int c = 0; c < CR; ++c) off[c] = static_cast<int>(pb.co0 + c0 + std::min(c, ncr - 1));
    for (int64_t kv0 = 0; kv0 < nkv; kv0 += NB) {
      const int nb = static_cast<int>(std::min<int64_t>(NB, nkv - kv0));
      int64_t seg[NB], vo[NB], dh[NB], dwc[NB], span[NB];
      for (int b = 0; b < NB; ++b) {
        const int64_t kv = kv0 + std::min(b, nb - 1);
        seg[b] = kv / nv;
        vo[b] = (kv % nv) * V;
        const int64_t kh = pb.merge_kw ? seg[b] : seg[b] / g.KW;
        const int64_t kw = pb.merge_kw ? 0 : seg[b] % g.KW;
        dh[b] = kh * g.dh;
        dwc[b] = kw * g.dw;
        span[b] = pb.merge_kw ? g.KW - 1 : 0;  // extra pixel columns the run covers
      }
      VT acc[CR][NB];
#pragma GCC unroll 16
      for (int c = 0; c < CR; ++c)
#pragma GCC unroll 4
        for (int b = 0; b < NB; ++b) acc[c][b] = VT{};

      int64_t p = p_begin;
      while (p < p_end) {
        const int64_t n = p / ohw, rem = p % ohw;
        const int64_t oh = rem / g.OW, ow_a = rem % g.OW;
        const int64_t ow_b = std::min<int64_t>(g.OW, ow_a + (p_end - p));
        const float* base = g.x + n * img + g.c0;
        // Row pointers and the interior ow range where every run is whole
        // (rows outside the image read the zero buffer, also in the interior).
        const float* rowp[NB];
        bool row_in[NB];
        int64_t lo = ow_a, hi = ow_b;
        for (int b = 0; b < NB; ++b) {
          const int64_t ih = oh * g.sh - g.pt + dh[b];
          row_in[b] = ih >= 0 && ih < g.H;
          if (!row_in[b]) {
            rowp[b] = nullptr;
            continue;
          }
          rowp[b] = base + ih * g.W * g.C + vo[b];
          // iw = ow*sw - pl + dwc; need iw >= 0 and iw + span < W.
          const int64_t need_lo = g.pl - dwc[b];
          const int64_t l = need_lo <= 0 ? 0 : ceil_div(need_lo, g.sw);
          const int64_t hmax = g.W - 1 - span[b] + g.pl - dwc[b];  // ow*sw <= hmax
          int64_t h = hmax < 0 ? 0 : hmax / g.sw + 1;
          // A partial last vector reads past its run: stay inside the buffer.
          const int64_t avail = (pb.x_end - rowp[b]) - V;  // floats
          const int64_t t = (avail < 0 ? -1 : avail / g.C) + g.pl - dwc[b];
          h = std::min(h, t < 0 ? int64_t{0} : t / g.sw + 1);
          lo = std::max(lo, l);
          hi = std::min(hi, h);
        }
        if (hi < lo) hi = lo;
        const float* dyp = pb.dy + p * pb.ldy;
        for (int64_t ow = ow_a; ow < ow_b; ++ow, dyp += pb.ldy) {
          const float* xp[NB];
          if (ow >= lo && ow < hi) {
            for (int b = 0; b < NB; ++b)
              xp[b] = row_in[b] ? rowp[b] + (ow * g.sw - g.pl + dwc[b]) * g.C : pb.zeros;
          } else {
            for (int b = 0; b < NB; ++b) {
              float* e = edge + b * V;
              const int64_t ih = oh * g.sh - g.pt + dh[b];
              const int64_t iw = ow * g.sw - g.pl + dwc[b];
              for (int j = 0; j < V; ++j) {
                const int64_t el = vo[b] + j;  // element of the run
                float val = 0.0f;
                if (el < L && row_in[b]) {
                  const int64_t x = iw + (pb.merge_kw ? el / g.Cg : 0);
                  const int64_t ch = pb.merge_kw ? el % g.Cg : el;
                  if (x >= 0 && x < g.W) val = base[(ih * g.W + x) * g.C + ch];
                }
                e[j] = val;
              }
              xp[b] = e;
            }
          }
          VT xv[NB];
#pragma GCC unroll 4
          for (int b = 0; b < NB; ++b) std::memcpy(&xv[b], xp[b], sizeof(VT));
#pragma GCC unroll 16
          for (int c = 0; c < CR; ++c) {
            const VT d = dyp[off[c]] - VT{};  // broadcast
#pragma GCC unroll 4
            for (int b = 0; b < NB; ++b) acc[c][b] += d * xv[b];
          }
        }
        p += ow_b - ow_a;
      }

      // Add the valid lanes into dwT.
      VT res[CR][NB];
#pragma GCC unroll 16
      for (int c = 0; c < CR; ++c)
#pragma GCC unroll 4
        for (int b = 0; b < NB; ++b) res[c][b] = acc[c][b];
      for (int c = 0; c < ncr; ++c)
        for (int b = 0; b < nb; ++b) {
          const float* r = reinterpret_cast<const float*>(&res[c][b]);
          const int64_t k0 = seg[b] * L + vo[b];
          const int64_t lanes = std::min<int64_t>(V, L - vo[b]);
          float* d = dwT + (c0 + c) * K + k0;
          for (int64_t j = 0; j < lanes; ++j) d[j] += r[j];
        }
    }
  }
}

}  // namespace
}  // namespace conv_detail
}  // namespace cnnx
