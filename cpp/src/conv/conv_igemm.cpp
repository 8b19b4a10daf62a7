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
