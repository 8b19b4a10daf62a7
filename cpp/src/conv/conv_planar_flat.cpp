// When the flat pixel-vectorised kernel (conv_planar_flat_impl.h) runs, and
// its dispatch to the ISA builds.
#include "conv/conv_internal.h"

namespace cnnx {
namespace conv_detail {

bool planar_flat_preferred(const PatchGeom& g, int64_t P, int64_t Nout) {
  if (active_isa() < Isa::avx2 || g.p0 != 0 || g.sh != 1 || g.sw != 1 || Nout > 4) return false;
  if (g.OH * g.OW <= 0 || P % (g.OH * g.OW) != 0) return false;
  // Enough pixels per row that the padding columns computed in vain stay a
  // small share.
  const int64_t L = g.OW + (g.KW - 1) * g.dw;
  return 4 * g.OW >= 3 * L && g.OW >= 8;
}

void planar_flat(const PatchGeom& g, int64_t P, int64_t Nout, const float* wmat, int64_t ldw,
                 const float* bias, Activation act, float* out, int64_t ldo) {
  if (active_isa() == Isa::avx512)
    planar_flat_avx512(g, P, Nout, wmat, ldw, bias, act, out, ldo);
  else
    planar_flat_avx2(g, P, Nout, wmat, ldw, bias, act, out, ldo);
}

}  // namespace conv_detail
}  // namespace cnnx
