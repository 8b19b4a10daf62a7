// Winograd F(4x4, 3x3) convolution tiles, included by one file per ISA and
// compiled with that ISA's flags (GCC vector extensions: V lanes of channels).
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

#include "conv/conv_internal.h"

namespace cnnx {
namespace conv_detail {
namespace wino {

template <class VT, int V>
inline VT load(const float* p, int n) {
  VT v;
  if (n == V) {
    std::memcpy(&v, p, sizeof(VT));
  } else {
    v = VT{};
    std::memcpy(&v, p, sizeof(float) * n);
  }
  return v;
}

template <class VT, int V>
inline void store(float* p, const VT& v, int n) {
  std::memcpy(p, &v, sizeof(float) * (n == V ? V : n));
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

}  // namespace wino

// U[e][cb][ci][CW] = (G g G^T)[e] for input channels [ci_begin, ci_end), all
// output channels (zero beyond Cout). g[kh][kw] = wmat[((kh*3+kw)*Cin+ci)*ldw+co].
template <class VT, int V, int NV>
void winograd_weights(const float* wmat, int64_t ldw, int64_t Cin, int64_t Cout, int64_t ncb,
                      float* U, int64_t ci_begin, int64_t ci_end) {
  constexpr int CW = NV * V;
  const VT q = VT{} + 0.25f, s6 = VT{} + (1.0f / 6.0f), s12 = VT{} + (1.0f / 12.0f),
           s24 = VT{} + (1.0f / 24.0f);
  // y = G x (3 points -> 6).
  auto gt = [&](const VT* x, VT* y) {
    const VT s02 = x[0] + x[2];
    y[0] = q * x[0];
    y[1] = -s6 * (s02 + x[1]);
    y[2] = -s6 * (s02 - x[1]);
    const VT a = s24 * x[0] + s6 * x[2], b = s12 * x[1];
    y[3] = a + b;
    y[4] = a - b;
    y[5] = x[2];
  };
  for (int64_t ci = ci_begin; ci < ci_end; ++ci)
    for (int64_t co = 0; co < ncb * CW; co += V) {
      const int cn = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(V, Cout - co)));
      VT g[3][3];
      for (int kh = 0; kh < 3; ++kh)
        for (int kw = 0; kw < 3; ++kw)
          g[kh][kw] = cn > 0 ? wino::load<VT, V>(wmat + ((kh * 3 + kw) * Cin + ci) * ldw + co, cn)
                             : VT{};
      VT t[6][3];  // t = G g
      for (int kw = 0; kw < 3; ++kw) {
        VT col[3] = {g[0][kw], g[1][kw], g[2][kw]}, o[6];
        gt(col, o);
        for (int i = 0; i < 6; ++i) t[i][kw] = o[i];
      }
      const int64_t cb = co / CW, lane = co % CW;
      for (int i = 0; i < 6; ++i) {
        VT o[6];
        gt(t[i], o);
        for (int j = 0; j < 6; ++j)
          std::memcpy(U + (((i * 6 + j) * ncb + cb) * Cin + ci) * CW + lane, &o[j], sizeof(VT));
      }
    }
}

template <class VT, int V, int NV, int R>
void winograd_tiles(const WinogradProblem& pb, int64_t t_begin, int64_t t_end, int64_t cb_begin,
                    int64_t cb_end, float* scratch) {
  constexpr int CW = NV * V;
  const int64_t Cin = pb.Cin;
  const int64_t nt = t_end - t_begin;
  const int64_t TBp = ceil_div(nt, R) * R;
  const int64_t ncb = cb_end - cb_begin;
  const int64_t ldm = ncb * CW;
  float* Vb = scratch;                // [36][TBp][Cin]
  float* Mb = scratch + 36 * TBp * Cin;  // [36][TBp][ldm]
  const int64_t tpi = pb.TH * pb.TW;  // tiles per image
  const int64_t img = pb.H * pb.W * pb.C;

  // 1. Input transform.
  for (int64_t t = 0; t < TBp; ++t) {
    if (t >= nt) {  // padding rows of the block: zeros (results are dropped)
      for (int e = 0; e < 36; ++e) std::memset(Vb + (e * TBp + t) * Cin, 0, sizeof(float) * Cin);
      continue;
    }
    const int64_t tg = t_begin + t;
    const int64_t n = tg / tpi, th = (tg % tpi) / pb.TW, tw = tg % pb.TW;
    const int64_t ih0 = th * 4 - pb.pt, iw0 = tw * 4 - pb.pl;
    const float* base = pb.x + n * img + pb.c0;
    const bool inside = ih0 >= 0 && iw0 >= 0 && ih0 + 6 <= pb.H && iw0 + 6 <= pb.W;
    for (int64_t c = 0; c < Cin; c += V) {
      const int cn = static_cast<int>(std::min<int64_t>(V, Cin - c));
      VT tmp[6][6];
      for (int i = 0; i < 6; ++i) {
        VT row[6];
        const int64_t ih = ih0 + i;
        for (int j = 0; j < 6; ++j) {
          const int64_t iw = iw0 + j;
          if (inside || (ih >= 0 && ih < pb.H && iw >= 0 && iw < pb.W))
            row[j] = wino::load<VT, V>(base + (ih * pb.W + iw) * pb.C + c, cn);
          else
            row[j] = VT{};
        }
        wino::bt6(row, tmp[i]);  // tmp[i][j] = (d B)[i][j]
      }
      for (int j = 0; j < 6; ++j) {
        VT col[6], out[6];
        for (int i = 0; i < 6; ++i) col[i] = tmp[i][j];
        wino::bt6(col, out);
        for (int i = 0; i < 6; ++i)
          wino::store<VT, V>(Vb + ((i * 6 + j) * TBp + t) * Cin + c, out[i], cn);
      }
    }
  }

  // 2. The 36 GEMMs.
  for (int e = 0; e < 36; ++e) {
    const float* Ve = Vb + e * TBp * Cin;
    for (int64_t cb = cb_begin; cb < cb_end; ++cb) {
      const float* Ue = pb.U + (e * pb.ncb + cb) * Cin * CW;
      float* Me = Mb + e * TBp * ldm + (cb - cb_begin) * CW;
      for (int64_t t0 = 0; t0 < TBp; t0 += R) {
        const float* a = Ve + t0 * Cin;
        VT acc[R][NV];
#pragma GCC unroll 32
        for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
          for (int j = 0; j < NV; ++j) acc[r][j] = VT{};
        const float* b = Ue;
        for (int64_t ci = 0; ci < Cin; ++ci, b += CW) {
          VT bv[NV];
          std::memcpy(bv, b, sizeof(bv));
#pragma GCC unroll 32
          for (int r = 0; r < R; ++r) {
            const VT av = a[r * Cin + ci] - VT{};  // broadcast
#pragma GCC unroll 4
            for (int j = 0; j < NV; ++j) acc[r][j] += av * bv[j];
          }
        }
        float* m = Me + t0 * ldm;
#pragma GCC unroll 32
        for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
          for (int j = 0; j < NV; ++j) std::memcpy(m + r * ldm + j * V, &acc[r][j], sizeof(VT));
      }
    }
  }

  // 3. Output transform, bias, activation, store.
  const int64_t co_begin = cb_begin * CW;
  const int64_t co_end = std::min(pb.Cout, cb_end * CW);
  for (int64_t t = 0; t < nt; ++t) {
    const int64_t tg = t_begin + t;
    const int64_t n = tg / tpi, th = (tg % tpi) / pb.TW, tw = tg % pb.TW;
    const int64_t oh0 = th * 4, ow0 = tw * 4;
    const int hn = static_cast<int>(std::min<int64_t>(4, pb.OH - oh0));
    const int wn = static_cast<int>(std::min<int64_t>(4, pb.OW - ow0));
    float* obase = pb.out + ((n * pb.OH + oh0) * pb.OW + ow0) * pb.ldo;
    for (int64_t co = co_begin; co < co_end; co += V) {
      const int cn = static_cast<int>(std::min<int64_t>(V, co_end - co));
      const float* m = Mb + t * ldm + (co - co_begin);
      VT tmp[4][6];
      for (int j = 0; j < 6; ++j) {
        VT col[6], o[4];
        for (int i = 0; i < 6; ++i) std::memcpy(&col[i], m + (i * 6 + j) * TBp * ldm, sizeof(VT));
        wino::at6(col, o);
        for (int i = 0; i < 4; ++i) tmp[i][j] = o[i];
      }
      VT bias = VT{};
      if (pb.bias) bias = wino::load<VT, V>(pb.bias + co, cn);
      for (int i = 0; i < hn; ++i) {
        VT o[4];
        wino::at6(tmp[i], o);
        float* orow = obase + (i * pb.OW) * pb.ldo + co;
        for (int j = 0; j < wn; ++j) {
          VT v = o[j] + bias;
          if (pb.act == Activation::relu) v = v < VT{} ? VT{} : v;
          wino::store<VT, V>(orow + j * pb.ldo, v, cn);
        }
      }
    }
  }
}

}  // namespace conv_detail
}  // namespace cnnx
