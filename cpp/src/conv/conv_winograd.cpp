// Driver of the Winograd F(4x4, 3x3) / F(2x2, 5x5) convolution (stride 1, no
// dilation): transforms the weights once per call, then threads
// take (tile block, output-channel slice) units; each unit transforms its
// input tiles into a thread-local buffer, runs the 36 GEMMs and the output
// transform (conv_winograd_impl.h). Working memory: the transformed weights
// (36/9 of the weights) plus one tile block per thread.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <atomic>

#include "cnnx/threading.h"
#include "common/scratch.h"
#include "conv/conv_internal.h"

#ifdef CNNX_HAVE_OPENMP
#include <omp.h>
#endif

namespace cnnx {
namespace conv_detail {

namespace {
WinogradKernel kernel_for(Isa isa, int ks, int64_t cin, int64_t nout) {
  if (isa == Isa::avx512) return winograd_kernel_avx512(ks, cin, nout);
  if (isa == Isa::avx2) return winograd_kernel_avx2(ks, cin, nout);
  return {nullptr, nullptr, nullptr, nullptr, 0, 0};
}
WinogradKernel kernel_for_isa(int ks, int64_t cin, int64_t nout) {
  return kernel_for(active_isa(), ks, cin, nout);
}
}  // namespace

void wino_zero_rows(float* Vb, int64_t sV, int64_t Cin, int64_t r_begin, int64_t r_end) {
  for (int e = 0; e < 36 && r_begin < r_end; ++e)
    std::memset(Vb + e * sV + r_begin * Cin, 0, sizeof(float) * Cin * (r_end - r_begin));
}

// CNNX_CONV_WINOGRAD=0 turns it off (to compare against the implicit GEMM).
bool winograd_preferred(const PatchGeom& g, int64_t P, int64_t Nout) {
  static const bool enabled = [] {
    const char* e = std::getenv("CNNX_CONV_WINOGRAD");
    return !(e && e[0] == '0');
  }();
  if (!enabled || active_isa() < Isa::avx2) return false;
  if (g.p0 != 0 || g.KH != g.KW || (g.KH != 3 && g.KH != 5) || g.sh != 1 || g.sw != 1 ||
      g.dh != 1 || g.dw != 1)
    return false;
  if (g.OH * g.OW <= 0 || P % (g.OH * g.OW) != 0) return false;
  // 3x3 only with AVX-512: measured with CNNX_ISA=avx2 (16 ymm registers),
  // the 3x3 transforms and GEMMs were slower than the implicit GEMM.
  if (g.KH == 3 && active_isa() != Isa::avx512) return false;
  // 3x3: wide layers only (the transforms cost per channel what a narrow
  // GEMM saves). 5x5 (F(2x2,5x5): 36 products for 100): LeNet-sized layers
  // already win.
  if (g.KH == 3 ? (g.Cg < 32 || Nout < 32) : (g.Cg < 8 || Nout < 8)) return false;
  // Tiles mostly inside the output (a 2x2 image would waste 3/4 of a tile).
  const int64_t M = 7 - g.KH;
  const double used =
      static_cast<double>(g.OH * g.OW) / (ceil_div(g.OH, M) * ceil_div(g.OW, M) * M * M);
  return used >= 0.5;
}

bool winograd(const PatchGeom& g, int64_t P, int64_t Nout, const float* wmat, int64_t ldw,
              const float* bias, Activation act, float* out, int64_t ldo) {
  if (P <= 0 || Nout <= 0) return true;
  const int ks = static_cast<int>(g.KH);
  const WinogradKernel k = kernel_for_isa(ks, g.Cg, Nout);
  const int64_t Cin = g.Cg, CW = k.CW;
  const int64_t ncb = ceil_div(Nout, CW);
  const int64_t N = P / (g.OH * g.OW);
  const int64_t M = 7 - ks;  // output tile
  const int64_t TH = ceil_div(g.OH, M), TW = ceil_div(g.OW, M);
  const int64_t T = N * TH * TW;
  const int nt = threads_for_flops(2.0 * T * 36 * Cin * Nout);

  const int64_t R = k.R;
  std::atomic<bool> finite{true};  // any NaN/infinity seen: the caller recomputes directly
  WinogradProblem pb{g.x, g.H, g.W,  g.C, g.c0,    Cin, g.OH, g.OW, g.pt, g.pl, TH,
                     TW,  T,   Nout, ncb, nullptr, 0,   bias, act,  out,  ldo};

  // Few tiles, many channels: the transformed weights (4x the weights) would
  // be streamed from memory for little reuse; keep them per channel block in
  // cache instead, with every tile's transformed input at hand.
  const int64_t TBall = ceil_div(T, R) * R;
  const bool ws = 36 * TBall * Cin <= (int64_t{1} << 20) && Cin * Nout >= 2 * TBall * (Cin + Nout);
  if (ws) {
    const int64_t sV = wino_estride(TBall * Cin);
    float* Vall = thread_scratch(ScratchSlot::conv_1, static_cast<size_t>(36 * sV));
    const size_t per = static_cast<size_t>(
        36 * (wino_estride(std::min<int64_t>(Cin, 128) * CW) + wino_estride(TBall * CW)));
    const int nth = static_cast<int>(std::min<int64_t>(nt, ncb));
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel num_threads(nth) if (nth > 1)
#endif
    {
#ifdef CNNX_HAVE_OPENMP
      const int t = omp_get_thread_num(), got = omp_get_num_threads();
#else
      const int t = 0, got = 1;
#endif
      const int64_t a = T * t / got, b = T * (t + 1) / got;
      if (!k.input(pb, a, b, a, sV, Vall)) finite = false;
      if (t == got - 1) wino_zero_rows(Vall, sV, Cin, T, TBall);
#ifdef CNNX_HAVE_OPENMP
#pragma omp barrier
#pragma omp for schedule(dynamic, 1)
#endif
      for (int64_t cb = 0; cb < ncb; ++cb)
        if (finite &&
            !k.ws(pb, wmat, ldw, Vall, TBall, sV, cb, thread_scratch(ScratchSlot::conv_0, per)))
          finite = false;
    }
    return finite;
  }

  const int64_t sU = wino_estride(ncb * Cin * CW);
  float* U = thread_scratch(ScratchSlot::conv_1, static_cast<size_t>(36 * sU));
  if (nt > 1 && Cin >= 2 * nt && Cin * Nout >= 64 * 64) {
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel for num_threads(nt) schedule(static)
#endif
    for (int t = 0; t < nt; ++t)
      if (!k.weights(wmat, ldw, Cin, Nout, ncb, U, Cin * t / nt, Cin * (t + 1) / nt, 0, Cin, sU))
        finite = false;
  } else {
    finite = k.weights(wmat, ldw, Cin, Nout, ncb, U, 0, Cin, 0, Cin, sU);
  }
  if (!finite) return false;
  return winograd_run_packed(active_isa(), g, P, Nout, U, sU, bias, nullptr, nullptr, act, out, ldo,
                             0, 0);
}

int64_t winograd_u_floats(Isa isa, int ks, int64_t cin, int64_t nout, int64_t* sU) {
  const WinogradKernel k = kernel_for(isa, ks, cin, nout);
  if (!k.fn) return 0;
  *sU = wino_estride(ceil_div(nout, k.CW) * cin * k.CW);
  return 36 * *sU;
}

bool winograd_pack(Isa isa, int ks, int64_t cin, int64_t nout, const float* wmat, int64_t ldw,
                   float* U) {
  const WinogradKernel k = kernel_for(isa, ks, cin, nout);
  if (!k.fn) return false;
  const int64_t ncb = ceil_div(nout, k.CW), sU = wino_estride(ncb * cin * k.CW);
  return k.weights(wmat, ldw, cin, nout, ncb, U, 0, cin, 0, cin, sU);
}

bool winograd_run_packed(Isa isa, const PatchGeom& g, int64_t P, int64_t Nout, const float* U,
                         int64_t sU, const float* bias, const float* scale, const float* res,
                         Activation act, float* out, int64_t ldo, int part, int parts) {
  if (P <= 0 || Nout <= 0) return true;
  const int ks = static_cast<int>(g.KH);
  const WinogradKernel k = kernel_for(isa, ks, g.Cg, Nout);
  const int64_t Cin = g.Cg, CW = k.CW, R = k.R;
  const int64_t ncb = ceil_div(Nout, CW);
  const int64_t N = P / (g.OH * g.OW);
  const int64_t M = 7 - ks;  // output tile
  const int64_t TH = ceil_div(g.OH, M), TW = ceil_div(g.OW, M);
  const int64_t T = N * TH * TW;
  // parts == 0: threads of our own; else the caller's part.
  const int nt = parts > 0 ? parts : threads_for_flops(2.0 * T * 36 * Cin * Nout);
  std::atomic<bool> finite{true};
  WinogradProblem pb{g.x, g.H, g.W,  g.C, g.c0, Cin, g.OH, g.OW, g.pt, g.pl, TH,
                     TW,  T,   Nout, ncb, U,    sU,  bias, act,  out,  ldo};
  pb.scale = scale;
  pb.res = res;

  // Tile blocks sized so that a block's transformed inputs and products stay
  // near L2; at least 2 register tiles.
  int64_t TB = (int64_t{1} << 18) / (36 * (Cin + ncb * CW));
  TB = std::max<int64_t>(2 * R, TB / R * R);
  TB = std::min(TB, ceil_div(T, R) * R);
  int64_t blocks = ceil_div(T, TB);
  // With several threads, a multiple of them of equal blocks (in register
  // tiles of R): 5 blocks on 2 threads (196 tiles of a 56x56 image) kept one
  // thread idle for a sixth of the time.
  const int64_t rtiles = ceil_div(T, R);
  if (nt > 1 && blocks > 1) blocks = std::min(rtiles, ceil_div(blocks, nt) * nt);
  // Few blocks: also split the output channels so that every thread works
  // (2 slices per thread for the dynamic schedule; a caller's parts take one
  // each, since every slice transforms the block's inputs again: SqueezeNet's
  // 13x13x64 -> 256 at batch 1, the slower of 2 parts 0.28 -> 0.27 ms).
  int64_t slices = 1;
  if (nt > 1 && blocks < 2 * nt) slices = std::min<int64_t>(ncb, parts > 0 ? nt : 2 * nt);
  // Big transformed weights (over 4 MB): threads take output-channel slices,
  // each reading only its part of U once per block (the input transform is
  // repeated per slice). Measured on 14x14x256: 4.2 -> 3.8 ms on 2 threads.
  if (nt > 1 && 36 * Cin * ncb * CW > (int64_t{1} << 20)) slices = std::min<int64_t>(ncb, nt);
  const int64_t units = blocks * slices;
  auto run = [&](int64_t u) {
    const int64_t b = u / slices, s = u % slices;
    // Block b: register tiles [rtiles*b/blocks, rtiles*(b+1)/blocks).
    const int64_t t0 = std::min(T, rtiles * b / blocks * R);
    const int64_t t1 = std::min(T, rtiles * (b + 1) / blocks * R);
    const int64_t c0 = ncb * s / slices, c1 = ncb * (s + 1) / slices;
    if (c0 >= c1 || !finite) return;
    const int64_t TBp = ceil_div(t1 - t0, R) * R;
    float* scratch = thread_scratch(
        ScratchSlot::conv_0,
        static_cast<size_t>(36 * (wino_estride(TBp * Cin) + wino_estride(TBp * (c1 - c0) * CW))));
    if (!k.fn(pb, t0, t1, c0, c1, scratch)) finite = false;
  };
  if (parts > 0) {
    // Slices first: with a channel split, each part reads only its share of U.
    for (int64_t u = 0; u < units; ++u)
      if ((slices % parts == 0 ? u % slices * parts / slices : u % parts) == part) run(u);
    return finite;
  }
  if (nt <= 1 || units == 1) {
    for (int64_t u = 0; u < units; ++u) run(u);
    return finite;
  }
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
#endif
  for (int64_t u = 0; u < units; ++u) run(u);
  return finite;
}

}  // namespace conv_detail
}  // namespace cnnx
