// Driver of the Winograd backward-weights (3x3, stride 1, no dilation, one
// group, wide layers; see conv_winograd_wgrad_impl.h).
//
// Many tiles (the usual case): threads take blocks of tiles, transform them
// into thread-local buffers and accumulate their own 36 x Cin x Cout
// products; the products are then summed and transformed back.
// Few tiles and many channels: every tile's transforms are computed once
// (shared, bounded by the tile count), then threads take blocks of input
// channels, each computing and transforming back its own rows.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cnnx/threading.h"
#include "common/scratch.h"
#include "conv/conv_internal.h"

#ifdef CNNX_HAVE_OPENMP
#include <omp.h>
#endif

namespace cnnx {
namespace conv_detail {

// CNNX_CONV_WINOGRAD=0 turns it off too.
bool winograd_wgrad_preferred(const Conv2dShape& s) {
  if (s.groups != 1 || s.KH != 3 || s.KW != 3 || s.stride_h != 1 || s.stride_w != 1 ||
      s.dilation_h != 1 || s.dilation_w != 1 || s.C_in < 32 || s.C_out < 32)
    return false;
  const PatchGeom g{nullptr, s.H, s.W, s.C_in, 0, s.C_in,    s.out_h(),  s.out_w(), 3,
                    3,       1,   1,   1,      1, s.pad_top, s.pad_left, 0};
  return winograd_preferred(g, s.N * g.OH * g.OW, s.C_out);
}

namespace {
WinogradWgradKernel kernel_for_isa() {
  if (active_isa() == Isa::avx512) return winograd_wgrad_kernel_avx512();
  return winograd_wgrad_kernel_avx2();
}
}  // namespace

bool winograd_wgrad(const Conv2dShape& s, const float* dy, const float* x, float* dw) {
  const WinogradWgradKernel k = kernel_for_isa();
  const int64_t OH = s.out_h(), OW = s.out_w();
  const int64_t Cin = s.C_in, Cout = s.C_out, R = k.R, CW = k.CW;
  const int64_t ncb = ceil_div(Cout, CW), ldy = ncb * CW;
  const int64_t Cinp = ceil_div(Cin, R) * R;
  const int64_t TH = ceil_div(OH, 4), TW = ceil_div(OW, 4), T = s.N * TH * TW;
  const WinogradProblem pb{
      x,  s.H, s.W, Cin,  0,   Cin,     OH, OW,      s.pad_top,        s.pad_left,
      TH, TW,  T,   Cout, ncb, nullptr, 0,  nullptr, Activation::none, nullptr,
      0};
  const int nt = threads_for_flops(2.0 * T * 36 * Cin * Cout);
  std::atomic<bool> finite{true};
  const int64_t TBall = ceil_div(T, R) * R;

  if (TBall * (Cin + ldy) <= Cinp * ldy && 36 * TBall * (Cin + ldy) <= (int64_t{1} << 22)) {
    // Few tiles: shared transforms of every tile, threads over channel rows.
    const int64_t sV = wino_estride(TBall * Cin + R), sY = wino_estride(TBall * ldy);
    float* Vall = thread_scratch(ScratchSlot::conv_1, static_cast<size_t>(36 * (sV + sY)));
    float* Yall = Vall + 36 * sV;
    const int64_t sM = wino_estride(R * ldy);
    const int64_t blocks = Cinp / R;
    const int nth = static_cast<int>(std::min<int64_t>(nt, blocks));
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
      if (!k.dy(pb, dy, Cout, a, b, a, sY, ldy, Yall)) finite = false;
      if (t == got - 1) {
        wino_zero_rows(Vall, sV, Cin, T, TBall);
        wino_zero_rows(Yall, sY, ldy, T, TBall);
      }
#ifdef CNNX_HAVE_OPENMP
#pragma omp barrier
#pragma omp for schedule(dynamic, 1)
#endif
      for (int64_t blk = 0; blk < blocks; ++blk) {
        if (!finite) continue;
        float* Mb = thread_scratch(ScratchSlot::conv_0, static_cast<size_t>(36 * sM));
        const int64_t ci0 = blk * R;
        k.gemms(Vall, sV, Cin, ci0, R, Yall, sY, ldy, TBall, Mb, sM, false);
        k.output(Mb, sM, ldy, Cin, Cout, ci0, std::min(Cin, ci0 + R), dw, Cout);
      }
    }
    return finite;
  }

  // Many tiles: blocks of tiles, a partial product per thread, then a sum.
  int64_t TB = (int64_t{1} << 18) / (36 * (Cin + ldy));
  TB = std::max<int64_t>(2 * R, TB / R * R);
  TB = std::min(TB, TBall);
  const int64_t nblocks = ceil_div(T, TB);
  const int64_t sV = wino_estride(TB * Cin + R), sY = wino_estride(TB * ldy);
  const int64_t sM = wino_estride(Cinp * ldy);
  const int nth = static_cast<int>(std::min<int64_t>(nt, nblocks));
  std::vector<float*> parts(std::max(nth, 1), nullptr);
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel num_threads(nth) if (nth > 1)
#endif
  {
#ifdef CNNX_HAVE_OPENMP
    const int t = omp_get_thread_num(), got = omp_get_num_threads();
#else
    const int t = 0, got = 1;
#endif
    float* Mt = thread_scratch(ScratchSlot::conv_1, static_cast<size_t>(36 * sM));
    std::memset(Mt, 0, sizeof(float) * 36 * sM);
    parts[t] = Mt;
    float* buf = thread_scratch(ScratchSlot::conv_0, static_cast<size_t>(36 * (sV + sY)));
    float* Vb = buf;
    float* Yb = buf + 36 * sV;
#ifdef CNNX_HAVE_OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
    for (int64_t blk = 0; blk < nblocks; ++blk) {
      if (!finite) continue;
      const int64_t t0 = blk * TB, t1 = std::min(T, t0 + TB);
      const int64_t rows = ceil_div(t1 - t0, R) * R;
      if (!k.input(pb, t0, t1, 0, sV, Vb) || !k.dy(pb, dy, Cout, t0, t1, 0, sY, ldy, Yb)) {
        finite = false;
        continue;
      }
      wino_zero_rows(Vb, sV, Cin, t1 - t0, rows);
      wino_zero_rows(Yb, sY, ldy, t1 - t0, rows);
      k.gemms(Vb, sV, Cin, 0, Cinp, Yb, sY, ldy, rows, Mt, sM, true);
    }
    // (implicit barrier) Sum the partial products: thread t owns a slice.
    if (finite) {
      const int64_t total = 36 * sM;
      const int64_t lo = total * t / got, hi = total * (t + 1) / got;
      for (int u = 1; u < got; ++u) {
        const float* src = parts[u];
        for (int64_t i = lo; i < hi; ++i) parts[0][i] += src[i];
      }
    }
#ifdef CNNX_HAVE_OPENMP
#pragma omp barrier
#endif
    if (finite) {
      const int64_t c0 = Cin * t / got, c1 = Cin * (t + 1) / got;
      if (c0 < c1) k.output(parts[0] + c0 * ldy, sM, ldy, Cin, Cout, c0, c1, dw, Cout);
    }
  }
  return finite;
}

}  // namespace conv_detail
}  // namespace cnnx
