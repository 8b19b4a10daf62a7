// Winograd backward-weights for 3x3 stride-1 layers, included by one file per
// ISA. Per 4x4 output tile t with its 6x6 input patch d and 4x4 gradient y,
// the tile's share of dW (3x3) is the correlation of d with y: F(3x3, 4x4)
// on the same 6 points as the forward F(4x4, 3x3), so
//   dW = A3^T [ sum_t (B^T d_t B) (.) (G4 y_t G4^T) ] A3
// i.e. the forward's input transform V[e][t][ci], a gradient transform
// Y[e][t][co], 36 GEMMs M[e][ci][co] = sum_t V[e][t][ci] Y[e][t][co]
// (reduction over tiles), and a 6x6 -> 3x3 output transform.
#pragma once
#include <algorithm>
#include <cstring>

#include "conv/conv_winograd_impl.h"

namespace cnnx {
namespace conv_detail {
// Internal linkage: every ISA's file compiles its own copy (shared template
// instances could be resolved to the AVX-512 build on an AVX2 CPU).
namespace {
namespace wino {

// y = G4 x (4 points -> 6): rows (p^0 .. p^3) / N_j, infinity (0, 0, 0, 1).
template <class VT>
inline void g4(const VT* x, VT* y) {
  const VT q = VT{} + 0.25f, s6 = VT{} + (1.0f / 6.0f), s24 = VT{} + (1.0f / 24.0f);
  const VT two = VT{} + 2.0f, four = VT{} + 4.0f, eight = VT{} + 8.0f;
  const VT e1 = x[0] + x[2], o1 = x[1] + x[3];
  const VT e2 = x[0] + four * x[2], o2 = two * x[1] + eight * x[3];
  y[0] = q * x[0];
  y[1] = -s6 * (e1 + o1);
  y[2] = -s6 * (e1 - o1);
  y[3] = s24 * (e2 + o2);
  y[4] = s24 * (e2 - o2);
  y[5] = x[3];
}

// y = A3^T m (6 points -> 3).
template <class VT>
inline void at3(const VT* m, VT* y) {
  const VT two = VT{} + 2.0f, four = VT{} + 4.0f;
  const VT s12 = m[1] + m[2], d12 = m[1] - m[2];
  const VT s34 = m[3] + m[4], d34 = m[3] - m[4];
  y[0] = m[0] + s12 + s34;
  y[1] = d12 + two * d34;
  y[2] = s12 + four * s34 + m[5];
}

}  // namespace wino

// Gradient transform of tiles [t_begin, t_end) into rows row0.. of
// Yb [36][rows][ldy] (matrix stride sY); channels [0, Cout), lanes up to ldy
// zero. dy is [*, OH, OW, ldd] (pb's grid). False on NaN/inf.
template <class VT, int V>
bool wino_dy_input(const WinogradProblem& pb, const float* dy, int64_t ldd, int64_t t_begin,
                   int64_t t_end, int64_t row0, int64_t sY, int64_t ldy, float* Yb) {
  const int64_t tpi = pb.TH * pb.TW;
  VT bad = VT{};
  for (int64_t tg = t_begin; tg < t_end; ++tg) {
    const int64_t t = row0 + tg - t_begin;
    const int64_t n = tg / tpi, th = (tg % tpi) / pb.TW, tw = tg % pb.TW;
    const int64_t oh0 = th * 4, ow0 = tw * 4;
    const int hn = static_cast<int>(std::min<int64_t>(4, pb.OH - oh0));
    const int wn = static_cast<int>(std::min<int64_t>(4, pb.OW - ow0));
    const float* base = dy + ((n * pb.OH + oh0) * pb.OW + ow0) * ldd;
    float* dst = Yb + t * ldy;
    for (int64_t c = 0; c < ldy; c += V) {
      const int cn = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(V, pb.Cout - c)));
      VT r6[4][6];  // G4 along each row of y
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
        VT row[4];
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
          row[j] = (i < hn && j < wn && cn > 0)
                       ? wino::load<VT, V>(base + (i * pb.OW + j) * ldd + c, cn)
                       : VT{};
          bad += row[j] - row[j];
        }
        wino::g4(row, r6[i]);
      }
#pragma GCC unroll 6
      for (int j = 0; j < 6; ++j) {
        VT col[4] = {r6[0][j], r6[1][j], r6[2][j], r6[3][j]}, out[6];
        wino::g4(col, out);
#pragma GCC unroll 6
        for (int i = 0; i < 6; ++i) std::memcpy(dst + (i * 6 + j) * sY + c, &out[i], sizeof(VT));
      }
    }
  }
  return wino::all_zero<VT, V>(bad);
}

// M[r][0:CW] (+)= sum_{t < kc} A[t*lda + r] * B[t*ldb + 0:CW] for r < rows (a
// multiple of R; A may be read up to R-1 floats past its last row's end).
template <class VT, int V, int NV, int R>
void wino_gemm_tn(const float* A, int64_t lda, int64_t kc, const float* B, int64_t ldb, float* M,
                  int64_t ldm, int64_t rows, bool accumulate) {
  for (int64_t r0 = 0; r0 < rows; r0 += R) {
    float* m = M + r0 * ldm;
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
    const float* a = A + r0;
    const float* b = B;
    for (int64_t t = 0; t < kc; ++t, a += lda, b += ldb) {
      VT bv[NV];
      std::memcpy(bv, b, sizeof(bv));
#pragma GCC unroll 32
      for (int r = 0; r < R; ++r) {
        const VT av = a[r] - VT{};  // broadcast
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

// 36 GEMMs: M[e][r][0:ldy] (+)= sum_t V[e][t][ci0 + r] Y[e][t][0:ldy] for
// r < nrows (a multiple of R). V: [36][tiles][Cin] (stride sV, R floats of
// slack at its end); Y: [36][tiles][ldy] (stride sY); M: [36][nrows][ldy]
// (stride sM).
template <class VT, int V, int NV, int R>
void wino_dw_gemms(const float* Vb, int64_t sV, int64_t Cin, int64_t ci0, int64_t nrows,
                   const float* Yb, int64_t sY, int64_t ldy, int64_t tiles, float* Mb, int64_t sM,
                   bool accumulate) {
  constexpr int CW = NV * V;
  for (int e = 0; e < 36; ++e)
    for (int64_t cb = 0; cb * CW < ldy; ++cb)
      wino_gemm_tn<VT, V, NV, R>(Vb + e * sV + ci0, Cin, tiles, Yb + e * sY + cb * CW, ldy,
                                 Mb + e * sM + cb * CW, ldy, nrows, accumulate);
}

// dw[((kh*3+kw)*Cin + ci)*ldw + co] = (A3^T M A3)[kh][kw] for ci in
// [ci0, ci1), co < Cout; row r of M (stride ldm, matrix stride sM) is ci0 + r.
template <class VT, int V>
void wino_dw_output(const float* Mb, int64_t sM, int64_t ldm, int64_t Cin, int64_t Cout,
                    int64_t ci0, int64_t ci1, float* dw, int64_t ldw) {
  for (int64_t ci = ci0; ci < ci1; ++ci)
    for (int64_t co = 0; co < Cout; co += V) {
      const int cn = static_cast<int>(std::min<int64_t>(V, Cout - co));
      const float* m = Mb + (ci - ci0) * ldm + co;
      VT t3[6][3];  // A3^T along w, for each of the 6 h points
#pragma GCC unroll 6
      for (int i = 0; i < 6; ++i) {
        VT row[6];
#pragma GCC unroll 6
        for (int j = 0; j < 6; ++j) std::memcpy(&row[j], m + (i * 6 + j) * sM, sizeof(VT));
        wino::at3(row, t3[i]);
      }
#pragma GCC unroll 3
      for (int kw = 0; kw < 3; ++kw) {
        VT col[6] = {t3[0][kw], t3[1][kw], t3[2][kw], t3[3][kw], t3[4][kw], t3[5][kw]}, o[3];
        wino::at3(col, o);
#pragma GCC unroll 3
        for (int kh = 0; kh < 3; ++kh)
          wino::store<VT, V>(dw + ((kh * 3 + kw) * Cin + ci) * ldw + co, o[kh], cn);
      }
    }
}

}  // namespace
}  // namespace conv_detail
}  // namespace cnnx
