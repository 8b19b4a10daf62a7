// Direct convolution vectorised over output pixels for at most 4 output
// channels and stride 1: the backward-data of RGB layers (dx of LeNet's
// first convolution has 3 channels), or any layer with so few outputs that a
// channel vector would be mostly empty. Included by one file per ISA (GCC
// vector extensions: V pixels per vector).
//
// Each image is copied into a zero-padded planar buffer xp[ci][r][c] whose
// rows are exactly as wide as the padded image (L columns). Output pixel
// (oh, ow) is then the "flat" index q = oh*L + ow, and its input for tap
// (kh, kw) is xp[ci][q + kh*dh*L + kw*dw]: one constant offset per tap, so 16
// consecutive flat pixels are one vector load, across row ends. The pixels
// with ow >= OW (L - OW per row) are computed on padding and never stored.
// A register tile is NP vectors of V flat pixels x CO = Nout channels
// (AVX-512: 8 x 3, 6 x 4, 12 x 2 or 16 x 1; AVX2: 4 x 3, 2 x 4, 6 x 2,
// 12 x 1); per (tap, ci): NP loads, CO broadcast weights, NP*CO FMAs.
#pragma once
#include <algorithm>
#include <cstring>

#include "cnnx/threading.h"
#include "common/scratch.h"
#include "conv/conv_internal.h"

namespace cnnx {
namespace conv_detail {
// Internal linkage: each ISA's file compiles its own copy (a shared inline
// definition could be resolved to the AVX-512 one on an AVX2 CPU).
namespace flat {
namespace {

struct Flat {
  const PatchGeom* g;
  int64_t L, RH, plane;  // padded row width, rows, floats per channel plane
  int64_t nk;            // taps
  const int64_t* toff;   // per tap: offset in a plane
  const float* wp;       // [tap][ci][Nout]
  int64_t Nout;
  const float* bias;
  Activation act;
  float* out;
  int64_t ldo;
};

void fill(const Flat& f, int64_t n, float* xp) {
  const PatchGeom& g = *f.g;
  std::memset(xp, 0, sizeof(float) * g.Cg * f.plane);
  const float* img = g.x + n * g.H * g.W * g.C + g.c0;
  const int64_t iw_lo = std::max<int64_t>(0, -g.pl), iw_hi = std::min<int64_t>(g.W, f.L - g.pl);
  for (int64_t r = 0; r < f.RH; ++r) {
    const int64_t ih = r - g.pt;
    if (ih < 0 || ih >= g.H) continue;
    const float* src = img + ih * g.W * g.C;
    float* d = xp + r * f.L + g.pl;
    for (int64_t iw = iw_lo; iw < iw_hi; ++iw)
      for (int64_t ci = 0; ci < g.Cg; ++ci) d[ci * f.plane + iw] = src[iw * g.C + ci];
  }
}

// Flat pixels [q0, q0 + V*NP) of image n; CO == Nout.
template <class VT, int V, int CO, int NP>
void tile(const Flat& f, const float* xp, int64_t n, int64_t q0) {
  const PatchGeom& g = *f.g;
  VT acc[NP][CO];
#pragma GCC unroll 16
  for (int v = 0; v < NP; ++v)
#pragma GCC unroll 4
    for (int c = 0; c < CO; ++c) acc[v][c] = VT{};
  const float* w = f.wp;
  for (int64_t t = 0; t < f.nk; ++t) {
    const float* xs = xp + q0 + f.toff[t];
    for (int64_t ci = 0; ci < g.Cg; ++ci, w += CO, xs += f.plane) {
      // The CO weights first, then each pixel vector once: NP*CO + CO + 1
      // registers (loading all NP vectors first would need one more than
      // AVX-512 has at 8 x 3, and the compiler would re-load them per FMA).
      VT b[CO];
#pragma GCC unroll 4
      for (int c = 0; c < CO; ++c) b[c] = VT{} + w[c];
#pragma GCC unroll 16
      for (int v = 0; v < NP; ++v) {
        VT xv;
        std::memcpy(&xv, xs + V * v, sizeof(VT));
        // One load per vector: without this GCC folds the load into each of
        // the CO FMAs as a memory operand (CO loads instead of one).
        asm("" : "+v"(xv));
#pragma GCC unroll 4
        for (int c = 0; c < CO; ++c) acc[v][c] += xv * b[c];
      }
    }
  }
  alignas(64) float t[CO][V * NP];
#pragma GCC unroll 16
  for (int v = 0; v < NP; ++v)
#pragma GCC unroll 4
    for (int c = 0; c < CO; ++c) std::memcpy(&t[c][V * v], &acc[v][c], sizeof(VT));
  float bias[CO] = {};
  if (f.bias)
    for (int c = 0; c < CO; ++c) bias[c] = f.bias[c];
  const bool relu = f.act == Activation::relu;
  int64_t oh = q0 / f.L, ow = q0 % f.L;
  for (int i = 0; i < V * NP; ++i) {
    if (oh >= g.OH) break;
    if (ow < g.OW) {
      float* o = f.out + ((n * g.OH + oh) * g.OW + ow) * f.ldo;
      for (int c = 0; c < CO; ++c) {
        const float v = t[c][i] + bias[c];
        o[c] = relu ? std::max(v, 0.0f) : v;
      }
    }
    if (++ow == f.L) {
      ow = 0;
      ++oh;
    }
  }
}

template <class VT, int V, int CO, int NP>
void run(const Flat& f, int64_t N, size_t xsize, int nt) {
  const PatchGeom& g = *f.g;
  const int64_t tiles = ceil_div(g.OH * f.L, V * NP);
  if (nt <= 1) {
    float* xp = thread_scratch(ScratchSlot::conv_0, xsize);
    for (int64_t n = 0; n < N; ++n) {
      fill(f, n, xp);
      for (int64_t i = 0; i < tiles; ++i) tile<VT, V, CO, NP>(f, xp, n, i * V * NP);
    }
    return;
  }
  if (N >= 2 * nt) {
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
#endif
    for (int64_t n = 0; n < N; ++n) {
      float* xp = thread_scratch(ScratchSlot::conv_0, xsize);
      fill(f, n, xp);
      for (int64_t i = 0; i < tiles; ++i) tile<VT, V, CO, NP>(f, xp, n, i * V * NP);
    }
    return;
  }
  // Few images: one shared copy per image, its tiles split over threads.
  float* xp = thread_scratch(ScratchSlot::conv_0, xsize);
  for (int64_t n = 0; n < N; ++n) {
    fill(f, n, xp);
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel for num_threads(nt) schedule(static)
#endif
    for (int64_t i = 0; i < tiles; ++i) tile<VT, V, CO, NP>(f, xp, n, i * V * NP);
  }
}

// The whole product (see planar_flat_avx512 in conv_internal.h); NPk: the
// vectors per tile for k = 1..4 outputs.
template <class VT, int V, int NP1, int NP2, int NP3, int NP4>
void planar_flat(const PatchGeom& g, int64_t P, int64_t Nout, const float* wmat, int64_t ldw,
                 const float* bias, Activation act, float* out, int64_t ldo) {
  const int64_t N = P / (g.OH * g.OW);
  const int64_t nk = g.KH * g.KW, K = nk * g.Cg;
  const int64_t CO = Nout;
  float* wp = thread_scratch(ScratchSlot::conv_1, static_cast<size_t>(K * CO + nk * 2 + 2));
  for (int64_t k = 0; k < K; ++k)
    for (int64_t c = 0; c < CO; ++c) wp[k * CO + c] = wmat[k * ldw + c];
  // Tap offsets after the weights, 8-byte aligned.
  int64_t* toff = reinterpret_cast<int64_t*>(wp + (K * CO + 1) / 2 * 2);
  Flat f{&g, g.OW + (g.KW - 1) * g.dw, 0, 0, nk, toff, wp, Nout, bias, act, out, ldo};
  f.RH = g.OH + (g.KH - 1) * g.dh;
  for (int64_t kh = 0; kh < g.KH; ++kh)
    for (int64_t kw = 0; kw < g.KW; ++kw) toff[kh * g.KW + kw] = kh * g.dh * f.L + kw * g.dw;
  // Tiles read up to 16 vectors past the last flat pixel, plus the taps'
  // reach: all inside the (zeroed) plane.
  f.plane = ceil_div((f.RH + 1) * f.L + 16 * V + 16, 16) * 16;
  const size_t xsize = static_cast<size_t>(g.Cg * f.plane);
  const int nt = threads_for_flops(2.0 * P * K * Nout);
  switch (Nout) {
    case 1: return run<VT, V, 1, NP1>(f, N, xsize, nt);
    case 2: return run<VT, V, 2, NP2>(f, N, xsize, nt);
    case 3: return run<VT, V, 3, NP3>(f, N, xsize, nt);
    default: return run<VT, V, 4, NP4>(f, N, xsize, nt);
  }
}

}  // namespace
}  // namespace flat
}  // namespace conv_detail
}  // namespace cnnx
