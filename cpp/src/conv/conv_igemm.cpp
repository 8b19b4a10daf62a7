// Driver of the indirect-GEMM convolution: packs the weights into channel
// blocks, then threads take (pixel group, channel block) units.
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "cnnx/threading.h"
#include "common/scratch.h"
#include "conv/conv_internal.h"

namespace cnnx {
namespace conv_detail {

// CNNX_CONV_IGEMM=0 turns it off (to compare against the packed implicit GEMM).
bool igemm_preferred(const PatchGeom& g, int64_t Nout) {
  // Wide layers: the packed GEMM's micro-kernel (tuned separately) is as fast
  // and packing is a small share. Narrow ones (few input or output channels,
  // where packing dominates) run on the indirect kernel.
  return igemm_available() && g.p0 == 0 && !g.is_identity() && (g.Cg < 32 || Nout < 32);
}

bool igemm_available() {
  static const bool enabled = [] {
    const char* e = std::getenv("CNNX_CONV_IGEMM");
    return !(e && e[0] == '0');
  }();
  return enabled && active_isa() >= Isa::avx2;
}

void igemm(const PatchGeom& g, int64_t P, int64_t Nout, const float* wmat, int64_t ldw,
           const float* bias, Activation act, float* out, int64_t ldo) {
  if (P <= 0 || Nout <= 0) return;
  const IgemmKernel k =
      active_isa() == Isa::avx512 ? igemm_kernel_avx512(Nout) : igemm_kernel_avx2(Nout);
  const int64_t K = g.depth();
  const int64_t CW = k.CW;
  const int64_t ncb = ceil_div(Nout, CW);
  float* wp = thread_scratch(ScratchSlot::conv_1, static_cast<size_t>(ncb * K * CW));
  for (int64_t cb = 0; cb < ncb; ++cb) {
    const int64_t c0 = cb * CW, cn = std::min(CW, Nout - c0);
    float* d = wp + cb * K * CW;
    for (int64_t kk = 0; kk < K; ++kk, d += CW) {
      std::memcpy(d, wmat + kk * ldw + c0, sizeof(float) * cn);
      if (cn < CW) std::memset(d + cn, 0, sizeof(float) * (CW - cn));
    }
  }
  const int64_t ohw = g.OH * g.OW;
  const int64_t N = ohw > 0 ? P / ohw : 0;
  const int64_t Hp = (g.OH - 1) * g.sh + (g.KH - 1) * g.dh + 1;
  const int64_t Wp = (g.OW - 1) * g.sw + (g.KW - 1) * g.dw + 1;
  const bool edges = g.pt > 0 || g.pl > 0 || Hp - g.pt > g.H || Wp - g.pl > g.W;
  if (edges && N >= 2 && N * ohw == P && Hp * Wp * g.Cg <= (int64_t{1} << 16)) {
    // Padded images (e.g. the "full" padding of backward-data): a zero-padded
    // copy of each image, so that no filter row crosses a border and every
    // kw run is contiguous (taps assembled per pixel at the borders cost
    // more than the arithmetic on small images).
    const int nt = threads_for_flops(2.0 * P * K * Nout);
    auto image = [&](int64_t n) {
      const int64_t psize = Hp * Wp * g.Cg;
      float* xp = thread_scratch(ScratchSlot::conv_2, static_cast<size_t>(psize));
      std::memset(xp, 0, sizeof(float) * psize);
      const float* src = g.x + n * g.H * g.W * g.C + g.c0;
      for (int64_t r = 0; r < Hp; ++r) {
        const int64_t ih = r - g.pt;
        if (ih < 0 || ih >= g.H) continue;
        for (int64_t c = std::max<int64_t>(0, g.pl); c < Wp && c - g.pl < g.W; ++c) {
          const int64_t iw = c - g.pl;
          if (iw < 0) continue;
          std::memcpy(xp + (r * Wp + c) * g.Cg, src + (ih * g.W + iw) * g.C, sizeof(float) * g.Cg);
        }
      }
      PatchGeom gp = g;
      gp.x = xp;
      gp.H = Hp;
      gp.W = Wp;
      gp.C = g.Cg;
      gp.c0 = 0;
      gp.pt = 0;
      gp.pl = 0;
      const IgemmProblem pp{
          gp, K, Nout, wp, bias, act, out + n * ohw * ldo, ldo, gp.dw == 1 && gp.KW > 1};
      const int64_t sg = pp.merge_kw ? g.KW * g.Cg : g.Cg;
      float* scratch = thread_scratch(ScratchSlot::conv_0, static_cast<size_t>(sg * (k.R + 1)));
      std::memset(scratch, 0, sizeof(float) * sg);
      for (int64_t cb = 0; cb < ncb; ++cb) k.fn(pp, 0, ohw, cb, scratch);
    };
    if (nt <= 1) {
      for (int64_t n = 0; n < N; ++n) image(n);
      return;
    }
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
#endif
    for (int64_t n = 0; n < N; ++n) image(n);
    return;
  }
  IgemmProblem pb{g, K, Nout, wp, bias, act, out, ldo, g.dw == 1 && g.Cg == g.C && g.KW > 1};
  const int64_t seg = pb.merge_kw ? g.KW * g.Cg : g.Cg;
  const int64_t tiles = ceil_div(P, k.R);
  const int nt = threads_for_flops(2.0 * P * K * Nout);
  // Pixel groups of G tiles; a unit is one group x one channel block.
  int64_t G = std::max<int64_t>(1, std::min<int64_t>(16, tiles * ncb / (8 * nt)));
  const int64_t groups = ceil_div(tiles, G);
  const int64_t units = groups * ncb;
  auto run = [&](int64_t u) {
    float* scratch = thread_scratch(ScratchSlot::conv_0, static_cast<size_t>(seg * (k.R + 1)));
    std::memset(scratch, 0, sizeof(float) * seg);
    const int64_t grp = u / ncb, cb = u % ncb;
    const int64_t mb = grp * G * k.R, me = std::min(P, mb + G * k.R);
    k.fn(pb, mb, me, cb, scratch);
  };
  if (nt <= 1 || units == 1) {
    for (int64_t u = 0; u < units; ++u) run(u);
    return;
  }
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
#endif
  for (int64_t u = 0; u < units; ++u) run(u);
}

}  // namespace conv_detail
}  // namespace cnnx
