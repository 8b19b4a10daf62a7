// Winograd F(4x4, 3x3) and F(2x2, 5x5) convolution tiles (KS = 3 or 5; both
// use the same 6 points, so the same input transform B^T on 6x6 tiles), included by one file per
// ISA and compiled with that ISA's flags (GCC vector extensions: V lanes of channels).
//
// For a block of output tiles (4x4 output pixels each, from a 6x6 input
// patch) and a range of output-channel blocks:
//   1. input transform  V[e][t][ci] = (B^T d B)[e] for the 36 points e;
//   2. 36 small GEMMs   M[e][t][co] = sum_ci V[e][t][ci] * U[e][ci][co]
//      (U = G g G^T, transformed once per call by the driver), register
//      tiles of R tiles x CW channels, V rows broadcast in place (no packing);
//   3. output transform Y = A^T M A, plus bias and activation, stored for
//      the pixels inside the output.
// The interpolation points are 0, +-1, +-2 and infinity (Lavin & Gray).
#pragma once
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "conv/conv_internal.h"

namespace cnnx {
namespace conv_detail {
// Internal linkage: every ISA's file compiles its own copy (shared template
// instances could be resolved to the AVX-512 build on an AVX2 CPU).
namespace {
namespace wino {

template <class VT, int V>
inline VT load(const float* p, int n) {
  VT v = VT{};
  if (n == V)
    std::memcpy(&v, p, sizeof(VT));
  else if (n == V / 2)  // e.g. 8 channels in a 16-lane vector: one half-width load
    std::memcpy(&v, p, sizeof(VT) / 2);
  else
    for (int i = 0; i < n; ++i) v[i] = p[i];
  return v;
}

template <class VT, int V>
inline void store(float* p, const VT& v, int n) {
  if (n == V)
    std::memcpy(p, &v, sizeof(VT));
  else if (n == V / 2)
    std::memcpy(p, &v, sizeof(VT) / 2);
  else
    for (int i = 0; i < n; ++i) p[i] = v[i];
}

// Whether every lane is 0 (false for NaN lanes).
template <class VT, int V>
inline bool all_zero(const VT& v) {
  float f[V];
  std::memcpy(f, &v, sizeof(VT));
  bool ok = true;
  for (int i = 0; i < V; ++i) ok &= f[i] == 0.0f;
  return ok;
}

// y = B^T x (6 points).
template <class VT>
inline void bt6(const VT* x, VT* y) {
  const VT four = VT{} + 4.0f, two = VT{} + 2.0f, five = VT{} + 5.0f;
  const VT a = x[4] - four * x[2];  // shared terms
  const VT b = x[3] - four * x[1];
  const VT c = x[4] - x[2];
  const VT d = two * (x[3] - x[1]);
  y[0] = four * x[0] - five * x[2] + x[4];
  y[1] = a + b;
  y[2] = a - b;
  y[3] = c + d;
  y[4] = c - d;
  y[5] = four * x[1] - five * x[3] + x[5];
}

// y = A^T m (6 points -> 4).
template <class VT>
inline void at6(const VT* m, VT* y) {
  const VT two = VT{} + 2.0f, four = VT{} + 4.0f, eight = VT{} + 8.0f;
  const VT s12 = m[1] + m[2], d12 = m[1] - m[2];
  const VT s34 = m[3] + m[4], d34 = m[3] - m[4];
  y[0] = m[0] + s12 + s34;
  y[1] = d12 + two * d34;
  y[2] = s12 + four * s34;
  y[3] = d12 + eight * d34 + m[5];
}

// y = A^T m for F(2, 5) (6 points -> 2).
template <class VT>
inline void at6_2(const VT* m, VT* y) {
  const VT two = VT{} + 2.0f;
  y[0] = m[0] + (m[1] + m[2]) + (m[3] + m[4]);
  y[1] = (m[1] - m[2]) + two * (m[3] - m[4]) + m[5];
}

// A^T for an output tile of M (4: F(4,3), 2: F(2,5)).
template <int M, class VT>
inline void at(const VT* m, VT* y) {
  if constexpr (M == 4)
    at6(m, y);
  else
    at6_2(m, y);
}

}  // namespace wino

// U[e][cb][ci][CW] = (G g G^T)[e] for input channels [ci_begin, ci_end), all
// output channels (zero beyond Cout). g[kh][kw] = wmat[((kh*KS+kw)*Cin+ci)*ldw+co].
// co_off: first output channel (column of wmat) of block 0; ldu: the ci
// count of U's blocks (U[e][cb][ci][CW] with ci < ldu).
// FLIP: read tap (KS-1-kh, KS-1-kw) instead (a flipped filter).
template <class VT, int V, int NV, int KS, bool FLIP = false>
bool winograd_weights(const float* wmat, int64_t ldw, int64_t Cin, int64_t Cout, int64_t ncb,
                      float* U, int64_t ci_begin, int64_t ci_end, int64_t co_off, int64_t ldu,
                      int64_t sU) {
  constexpr int CW = NV * V;
  const VT q = VT{} + 0.25f, s6 = VT{} + (1.0f / 6.0f), s12 = VT{} + (1.0f / 12.0f),
           s24 = VT{} + (1.0f / 24.0f);
  // y = G x (KS points -> 6): row j is (p_j^0 .. p_j^(KS-1)) / N_j for the
  // points 0, 1, -1, 2, -2 (N_j = prod over the other finite points of
  // p_j - p_l: 4, -6, -6, 24, 24) and (0 .. 0, 1) for infinity.
  auto gt = [&](const VT* x, VT* y) {
    if constexpr (KS == 3) {
      const VT s02 = x[0] + x[2];
      y[0] = q * x[0];
      y[1] = -s6 * (s02 + x[1]);
      y[2] = -s6 * (s02 - x[1]);
      const VT a = s24 * x[0] + s6 * x[2], b = s12 * x[1];
      y[3] = a + b;
      y[4] = a - b;
      y[5] = x[2];
    } else {
      const VT two = VT{} + 2.0f, four = VT{} + 4.0f, sixteen = VT{} + 16.0f;
      const VT ev1 = x[0] + x[2] + x[4], od1 = x[1] + x[3];
      const VT ev2 = x[0] + four * x[2] + sixteen * x[KS - 1];
      const VT od2 = two * x[1] + (four * two) * x[3];
      y[0] = q * x[0];
      y[1] = -s6 * (ev1 + od1);
      y[2] = -s6 * (ev1 - od1);
      y[3] = s24 * (ev2 + od2);
      y[4] = s24 * (ev2 - od2);
      y[5] = x[KS - 1];
    }
  };
  VT bad = VT{};
  // Channel block outer, input channel inner: each of the 36 destination
  // streams is then written sequentially (CW floats per ci).
  for (int64_t cbo = 0; cbo < ncb; ++cbo)
    for (int64_t ci = ci_begin; ci < ci_end; ++ci)
      for (int64_t co = cbo * CW; co < (cbo + 1) * CW; co += V) {
        const int cn =
            static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(V, Cout - co_off - co)));
        VT g[KS][KS];
        for (int kh = 0; kh < KS; ++kh)
          for (int kw = 0; kw < KS; ++kw) {
            const int tap = FLIP ? (KS - 1 - kh) * KS + (KS - 1 - kw) : kh * KS + kw;
            g[kh][kw] =
                cn > 0 ? wino::load<VT, V>(wmat + (tap * Cin + ci) * ldw + co_off + co, cn) : VT{};
            bad += g[kh][kw] - g[kh][kw];  // NaN once a value is NaN or infinite
          }
        VT t[6][KS];  // t = G g
        for (int kw = 0; kw < KS; ++kw) {
          VT col[KS], o[6];
          for (int kh = 0; kh < KS; ++kh) col[kh] = g[kh][kw];
          gt(col, o);
          for (int i = 0; i < 6; ++i) t[i][kw] = o[i];
        }
        const int64_t cb = co / CW, lane = co % CW;
        for (int i = 0; i < 6; ++i) {
          VT o[6];
          gt(t[i], o);
          for (int j = 0; j < 6; ++j)
            std::memcpy(U + (i * 6 + j) * sU + (cb * ldu + ci) * CW + lane, &o[j], sizeof(VT));
        }
      }
  return wino::all_zero<VT, V>(bad);
}

// Zero rows [r_begin, r_end) of Vb [36][TBp][Cin] (padding rows of a block,
// whose products are dropped: zeros keep them finite).
inline void wino_zero_rows_impl(float* Vb, int64_t sV, int64_t Cin, int64_t r_begin,
                                int64_t r_end) {
  if (r_begin >= r_end) return;
  for (int e = 0; e < 36; ++e)
    std::memset(Vb + e * sV + r_begin * Cin, 0, sizeof(float) * Cin * (r_end - r_begin));
}

// Input transform of tiles [t_begin, t_end) (global indices) into rows
// row0.. of Vb [36][TBp][Cin].
template <class VT, int V, int M>
bool wino_input(const WinogradProblem& pb, int64_t t_begin, int64_t t_end, int64_t row0, int64_t sV,
                float* Vb) {
  const int64_t Cin = pb.Cin;
  const int64_t tpi = pb.TH * pb.TW;  // tiles per image
  const int64_t img = pb.H * pb.W * pb.C;
  VT bad = VT{};
  for (int64_t tg = t_begin; tg < t_end; ++tg) {
    const int64_t t = row0 + tg - t_begin;
    const int64_t n = tg / tpi, th = (tg % tpi) / pb.TW, tw = tg % pb.TW;
    const int64_t ih0 = th * M - pb.pt, iw0 = tw * M - pb.pl;
    const float* base = pb.x + n * img + pb.c0;
    // NaN/inf check: each pixel once, by the tile whose M x M stride window
    // holds it (the last tile of a row / column also checks its halo).
    {
      const int64_t ie = ih0 + (th == pb.TH - 1 ? 6 : M), je = iw0 + (tw == pb.TW - 1 ? 6 : M);
      for (int64_t ih = std::max<int64_t>(ih0, 0); ih < std::min(ie, pb.H); ++ih)
        for (int64_t iw = std::max<int64_t>(iw0, 0); iw < std::min(je, pb.W); ++iw) {
          const float* p = base + (ih * pb.W + iw) * pb.C;
          int64_t c = 0;
          for (; c + V <= Cin; c += V) {
            VT v;
            std::memcpy(&v, p + c, sizeof(VT));
            bad += v - v;
          }
          if (c < Cin) {
            const VT v = wino::load<VT, V>(p + c, static_cast<int>(Cin - c));
            bad += v - v;
          }
        }
    }
    // Rows of the 6x6 patch (null: outside the image, all zeros) and the
    // columns inside the image (bit j).
    const float* rp[6];
    unsigned cm = 0;
    for (int j = 0; j < 6; ++j)
      if (iw0 + j >= 0 && iw0 + j < pb.W) cm |= 1u << j;
    for (int i = 0; i < 6; ++i) {
      const int64_t ih = ih0 + i;
      rp[i] = (ih >= 0 && ih < pb.H) ? base + (ih * pb.W + iw0) * pb.C : nullptr;
    }
    const int64_t ps = pb.C;
    float* dst = Vb + t * Cin;
    auto one = [&](int64_t c, auto full) {
      constexpr bool FULL = decltype(full)::value;
      const int cn = FULL ? V : static_cast<int>(Cin - c);
      VT tmp[6][6];
#pragma GCC unroll 6
      for (int i = 0; i < 6; ++i) {
        if (!rp[i]) {
#pragma GCC unroll 6
          for (int j = 0; j < 6; ++j) tmp[i][j] = VT{};
          continue;
        }
        VT row[6];
        const float* r = rp[i] + c;
#pragma GCC unroll 6
        for (int j = 0; j < 6; ++j) {
          if (!((cm >> j) & 1u))
            row[j] = VT{};
          else if (FULL)
            std::memcpy(&row[j], r + j * ps, sizeof(VT));
          else
            row[j] = wino::load<VT, V>(r + j * ps, cn);
        }
        wino::bt6(row, tmp[i]);  // tmp[i][j] = (d B)[i][j]
      }
#pragma GCC unroll 6
      for (int j = 0; j < 6; ++j) {
        VT col[6], out[6];
#pragma GCC unroll 6
        for (int i = 0; i < 6; ++i) col[i] = tmp[i][j];
        wino::bt6(col, out);
#pragma GCC unroll 6
        for (int i = 0; i < 6; ++i) {
          if (FULL)
            std::memcpy(dst + (i * 6 + j) * sV + c, &out[i], sizeof(VT));
          else
            wino::store<VT, V>(dst + (i * 6 + j) * sV + c, out[i], cn);
        }
      }
    };
    int64_t c = 0;
    for (; c + V <= Cin; c += V) one(c, std::true_type{});
    if (c < Cin) one(c, std::false_type{});
  }
  return wino::all_zero<VT, V>(bad);
}

// M[t][0:CW] (+)= sum_{k < kc} A[t*lda + k] * B[k][0:CW] for t < rows (a
// multiple of R); M rows have stride ldm.
template <class VT, int V, int NV, int R>
void wino_gemm(const float* A, int64_t lda, int64_t kc, const float* B, float* M, int64_t ldm,
               int64_t rows, bool accumulate) {
  constexpr int CW = NV * V;
  for (int64_t t0 = 0; t0 < rows; t0 += R) {
    const float* a = A + t0 * lda;
    float* m = M + t0 * ldm;
    VT acc[R][NV];
    if (accumulate) {
#pragma GCC unroll 32
      for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) std::memcpy(&acc[r][j], m + r * ldm + j * V, sizeof(VT));
    } else {
#pragma GCC unroll 32
      for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) acc[r][j] = VT{};
    }
    const float* b = B;
    for (int64_t k = 0; k < kc; ++k, b += CW) {
      VT bv[NV];
      std::memcpy(bv, b, sizeof(bv));
#pragma GCC unroll 32
      for (int r = 0; r < R; ++r) {
        const VT av = a[r * lda + k] - VT{};  // broadcast
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) acc[r][j] += av * bv[j];
      }
    }
#pragma GCC unroll 32
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) std::memcpy(m + r * ldm + j * V, &acc[r][j], sizeof(VT));
  }
}

// Output transform of tiles [t_begin, t_end) whose products are rows
// [row0, ...) of Mb [36][TBp][ldm], channels [co_begin, co_end) (column 0 of
// Mb is channel co_begin).
template <class VT, int V, int M>
void wino_output(const WinogradProblem& pb, int64_t t_begin, int64_t t_end, int64_t row0,
                 int64_t sM, const float* Mb, int64_t ldm, int64_t co_begin, int64_t co_end) {
  const int64_t tpi = pb.TH * pb.TW;
  for (int64_t tg = t_begin; tg < t_end; ++tg) {
    const int64_t t = row0 + tg - t_begin;
    const int64_t n = tg / tpi, th = (tg % tpi) / pb.TW, tw = tg % pb.TW;
    const int64_t oh0 = th * M, ow0 = tw * M;
    const int hn = static_cast<int>(std::min<int64_t>(M, pb.OH - oh0));
    const int wn = static_cast<int>(std::min<int64_t>(M, pb.OW - ow0));
    float* obase = pb.out + ((n * pb.OH + oh0) * pb.OW + ow0) * pb.ldo;
    for (int64_t co = co_begin; co < co_end; co += V) {
      const int cn = static_cast<int>(std::min<int64_t>(V, co_end - co));
      const float* m = Mb + t * ldm + (co - co_begin);
      VT tmp[M][6];
#pragma GCC unroll 6
      for (int j = 0; j < 6; ++j) {
        VT col[6], o[M];
#pragma GCC unroll 6
        for (int i = 0; i < 6; ++i) std::memcpy(&col[i], m + (i * 6 + j) * sM, sizeof(VT));
        wino::at<M>(col, o);
#pragma GCC unroll 6
        for (int i = 0; i < M; ++i) tmp[i][j] = o[i];
      }
      VT bias = VT{}, scale = VT{} + 1.0f;
      if (pb.bias) bias = wino::load<VT, V>(pb.bias + co, cn);
      if (pb.scale) scale = wino::load<VT, V>(pb.scale + co, cn);
      const float* rbase = pb.res ? pb.res + (obase - pb.out) : nullptr;
#pragma GCC unroll 4
      for (int i = 0; i < M; ++i) {
        if (i >= hn) break;
        VT o[M];
        wino::at<M>(tmp[i], o);
        float* orow = obase + (i * pb.OW) * pb.ldo + co;
#pragma GCC unroll 4
        for (int j = 0; j < M; ++j) {
          if (j >= wn) break;
          VT v = pb.scale ? o[j] * scale + bias : o[j] + bias;
          if (rbase) v += wino::load<VT, V>(rbase + (i * pb.OW + j) * pb.ldo + co, cn);
          if (pb.act == Activation::relu) v = v < VT{} ? VT{} : v;
          wino::store<VT, V>(orow + j * pb.ldo, v, cn);
        }
      }
    }
  }
}

// Tiles [t_begin, t_end) x channel blocks [cb_begin, cb_end) with the
// transformed weights pb.U: input transform, 36 GEMMs, output transform.
// VI: vector type and lanes of the input transform (by input channels); VT,
// V, NV: of the GEMM and output transform (by output channels).
template <class VI, int VIL, class VT, int V, int NV, int R, int KS>
bool winograd_tiles(const WinogradProblem& pb, int64_t t_begin, int64_t t_end, int64_t cb_begin,
                    int64_t cb_end, float* scratch) {
  constexpr int CW = NV * V;
  const int64_t Cin = pb.Cin;
  const int64_t nt = t_end - t_begin;
  const int64_t TBp = ceil_div(nt, R) * R;
  const int64_t ldm = (cb_end - cb_begin) * CW;
  const int64_t sV = wino_estride(TBp * Cin), sM = wino_estride(TBp * ldm);
  float* Vb = scratch;            // [36][TBp][Cin]
  float* Mb = scratch + 36 * sV;  // [36][TBp][ldm]
  constexpr int M = 7 - KS;
  if (!wino_input<VI, VIL, M>(pb, t_begin, t_end, 0, sV, Vb)) return false;
  wino_zero_rows_impl(Vb, sV, Cin, nt, TBp);
  for (int e = 0; e < 36; ++e)
    for (int64_t cb = cb_begin; cb < cb_end; ++cb)
      wino_gemm<VT, V, NV, R>(Vb + e * sV, Cin, Cin, pb.U + e * pb.sU + cb * Cin * CW,
                              Mb + e * sM + (cb - cb_begin) * CW, ldm, TBp, false);
  wino_output<VT, V, M>(pb, t_begin, t_end, 0, sM, Mb, ldm, cb_begin * CW,
                        std::min(pb.Cout, cb_end * CW));
  return true;
}

// Weight-stationary form for few tiles and many channels: Vall [36][TBp][Cin]
// (matrix stride sV) holds every tile's transformed input (TBp >= T, a
// multiple of R); for one channel block cb, the weights are transformed
// chunk by chunk of input channels into a small buffer and used at once (the
// full transformed weights, 4x the weights, would be streamed from memory).
template <class VT, int V, int NV, int R, int KS>
bool winograd_ws_block(const WinogradProblem& pb, const float* wmat, int64_t ldw, const float* Vall,
                       int64_t TBp, int64_t sV, int64_t cb, float* scratch) {
  constexpr int CW = NV * V;
  const int64_t Cin = pb.Cin;
  const int64_t kcs = std::min<int64_t>(Cin, 128);
  const int64_t sU = wino_estride(kcs * CW), sM = wino_estride(TBp * CW);
  float* Uc = scratch;            // [36][kcs][CW]
  float* Mb = scratch + 36 * sU;  // [36][TBp][CW]
  for (int64_t k0 = 0; k0 < Cin; k0 += kcs) {
    const int64_t kc = std::min(kcs, Cin - k0);
    if (!winograd_weights<VT, V, NV, KS>(wmat + k0 * ldw, ldw, Cin, pb.Cout, 1, Uc, 0, kc, cb * CW,
                                         kc, sU))
      return false;
    for (int e = 0; e < 36; ++e)
      wino_gemm<VT, V, NV, R>(Vall + e * sV + k0, Cin, kc, Uc + e * sU, Mb + e * sM, CW, TBp,
                              k0 > 0);
  }
  wino_output<VT, V, 7 - KS>(pb, 0, pb.T, 0, sM, Mb, CW, cb * CW, std::min(pb.Cout, (cb + 1) * CW));
  return true;
}

}  // namespace
}  // namespace conv_detail
}  // namespace cnnx
