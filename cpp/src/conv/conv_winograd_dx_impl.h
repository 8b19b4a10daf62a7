// Winograd backward-data for 5x5 stride-1 layers as the adjoint of the
// forward F(2x2, 5x5), included by one file per ISA. The forward maps each
// 6x6 input window d to its 2x2 output tile y = A^T [U . (B^T d B)] A
// (summed over input channels); its adjoint maps each 2x2 tile of dy to a
// 6x6 window of dx:
//   dx_window += B [ sum_co U[.][ci][co] . (A dy_tile A^T)[co] ] B^T
// so the tiles are dy's (fewer than dx's for a "valid" layer: 25 instead of
// 49 per LeNet conv2 image), U is the forward's weight transform, and the
// windows overlap-add into dx (threads own whole images).
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

// y = A x for F(2, .): 2 points -> 6 (the transpose of at6_2).
template <class VT>
inline void a2(const VT* x, VT* y) {
  const VT two = VT{} + 2.0f;
  y[0] = x[0];
  y[1] = x[0] + x[1];
  y[2] = x[0] - x[1];
  y[3] = x[0] + two * x[1];
  y[4] = x[0] - two * x[1];
  y[5] = x[1];
}

// x = B m (6 -> 6, the transpose of bt6).
template <class VT>
inline void b6(const VT* m, VT* x) {
  const VT two = VT{} + 2.0f, four = VT{} + 4.0f, five = VT{} + 5.0f;
  x[0] = four * m[0];
  x[1] = four * (m[2] - m[1] + m[5]) + two * (m[4] - m[3]);
  x[2] = -(five * m[0] + four * (m[1] + m[2]) + m[3] + m[4]);
  x[3] = m[1] - m[2] + two * (m[3] - m[4]) - five * m[5];
  x[4] = m[0] + m[1] + m[2] + m[3] + m[4];
  x[5] = m[5];
}

}  // namespace wino

// Images [n_begin, n_end): dy [N][OH][OW][Cout] (2x2 tiles, TH x TW per
// image), dx [N][H][W][Cin] (overwritten), U [36] (stride sU) x [ncb][Cout][CW]
// (the forward weight transform with input-channel lanes). VY: vectors of
// the dy transform; VT, V, NV (= 1), R: the GEMM tile and the dx transform.
// scratch: 36 * (wino_estride(Tp * Cout) + wino_estride(Tp * ncb * CW))
// floats, Tp = the images' tiles rounded up to R. False on NaN/inf in dy.
template <class VY, int VYL, class VT, int V, int NV, int R>
bool winograd_dx_images(const WinogradProblem& pb, const float* dy, int64_t n_begin, int64_t n_end,
                        float* scratch) {
  constexpr int CW = NV * V;
  const int64_t Cout = pb.Cout;  // dy channels (GEMM depth)
  const int64_t Cin = pb.Cin;    // dx channels
  const int64_t tpi = pb.TH * pb.TW;
  const int64_t nt = (n_end - n_begin) * tpi;  // the tiles of these images, in one block
  const int64_t Tp = ceil_div(nt, R) * R;
  const int64_t ldm = pb.ncb * CW;
  const int64_t sY = wino_estride(Tp * Cout), sM = wino_estride(Tp * ldm);
  float* Yb = scratch;
  float* Mb = scratch + 36 * sY;
  VY bad = VY{};
  std::memset(pb.out + n_begin * pb.H * pb.W * Cin, 0,
              sizeof(float) * (n_end - n_begin) * pb.H * pb.W * Cin);
  // 1. dy tiles: Y = A y A^T (2x2 -> 6x6).
  for (int64_t t = 0; t < Tp; ++t) {
    float* dst = Yb + t * Cout;
    if (t >= nt) {
      for (int e = 0; e < 36; ++e) std::memset(dst + e * sY, 0, sizeof(float) * Cout);
      continue;
    }
    const int64_t n = n_begin + t / tpi, tl = t % tpi;
    const int64_t oh0 = (tl / pb.TW) * 2, ow0 = (tl % pb.TW) * 2;
    const bool h2 = oh0 + 1 < pb.OH, w2 = ow0 + 1 < pb.OW;
    const float* src = dy + ((n * pb.OH + oh0) * pb.OW + ow0) * Cout;
    for (int64_t c = 0; c < Cout; c += VYL) {
      const int cn = static_cast<int>(std::min<int64_t>(VYL, Cout - c));
      VY y[2][2];
      y[0][0] = wino::load<VY, VYL>(src + c, cn);
      y[0][1] = w2 ? wino::load<VY, VYL>(src + Cout + c, cn) : VY{};
      y[1][0] = h2 ? wino::load<VY, VYL>(src + pb.OW * Cout + c, cn) : VY{};
      y[1][1] = h2 && w2 ? wino::load<VY, VYL>(src + (pb.OW + 1) * Cout + c, cn) : VY{};
      bad += (y[0][0] - y[0][0]) + (y[0][1] - y[0][1]) + (y[1][0] - y[1][0]) + (y[1][1] - y[1][1]);
      VY r0[6], r1[6];
      wino::a2(y[0], r0);  // along w
      wino::a2(y[1], r1);
#pragma GCC unroll 6
      for (int j = 0; j < 6; ++j) {
        const VY col[2] = {r0[j], r1[j]};
        VY o[6];
        wino::a2(col, o);  // along h
#pragma GCC unroll 6
        for (int i = 0; i < 6; ++i) wino::store<VY, VYL>(dst + (i * 6 + j) * sY + c, o[i], cn);
      }
    }
  }
  // 2. M[e][t][ci] = sum_co Y[e][t][co] U[e][co][ci].
  for (int e = 0; e < 36; ++e)
    for (int64_t cb = 0; cb < pb.ncb; ++cb)
      wino_gemm<VT, V, NV, R>(Yb + e * sY, Cout, Cout, pb.U + e * pb.sU + cb * Cout * CW,
                              Mb + e * sM + cb * CW, ldm, Tp, false);
  // 3. dx windows += B M B^T (6x6), inside the image.
  for (int64_t t = 0; t < nt; ++t) {
    const int64_t n = n_begin + t / tpi, tl = t % tpi;
    float* dxn = pb.out + n * pb.H * pb.W * Cin;
    const int64_t ih0 = (tl / pb.TW) * 2 - pb.pt, iw0 = (tl % pb.TW) * 2 - pb.pl;
    for (int64_t c = 0; c < Cin; c += V) {
      const int cn = static_cast<int>(std::min<int64_t>(V, Cin - c));
      const float* m = Mb + t * ldm + c;
      VT tmp[6][6];
#pragma GCC unroll 6
      for (int j = 0; j < 6; ++j) {
        VT col[6], o[6];
#pragma GCC unroll 6
        for (int i = 0; i < 6; ++i) std::memcpy(&col[i], m + (i * 6 + j) * sM, sizeof(VT));
        wino::b6(col, o);  // along h
#pragma GCC unroll 6
        for (int i = 0; i < 6; ++i) tmp[i][j] = o[i];
      }
#pragma GCC unroll 6
      for (int i = 0; i < 6; ++i) {
        const int64_t ih = ih0 + i;
        if (ih < 0 || ih >= pb.H) continue;
        VT o[6];
        wino::b6(tmp[i], o);  // along w
        float* row = dxn + ih * pb.W * Cin + c;
#pragma GCC unroll 6
        for (int j = 0; j < 6; ++j) {
          const int64_t iw = iw0 + j;
          if (iw < 0 || iw >= pb.W) continue;
          float* d = row + iw * Cin;
          wino::store<VT, V>(d, wino::load<VT, V>(d, cn) + o[j], cn);
        }
      }
    }
  }
  return wino::all_zero<VY, VYL>(bad);
}

}  // namespace
}  // namespace conv_detail
}  // namespace cnnx
