// When the pixel-vectorised direct convolution (conv_planar__avx512.cpp) runs.
#include <cstdlib>

#include "conv/conv_internal.h"

namespace cnnx {
namespace conv_detail {

// CNNX_CONV_PLANAR=0 turns it off (to compare against igemm).
bool planar_preferred(const PatchGeom& g, int64_t P, int64_t Nout) {
  static const bool enabled = [] {
    const char* e = std::getenv("CNNX_CONV_PLANAR");
    return !(e && e[0] == '0');
  }();
  if (!enabled || active_isa() != Isa::avx512 || g.p0 != 0 || g.is_identity()) return false;
  if (g.OH * g.OW <= 0 || P % (g.OH * g.OW) != 0) return false;
  // Rows long enough to fill most of the 16-pixel vectors.
  const int64_t vec = ceil_div(g.OW, 16) * 16;
  if (g.OW < 12 || 4 * g.OW < 3 * vec || Nout < 4) return false;
  // Very few input channels (igemm's per-pixel pointers and broadcasts cost
  // more than the arithmetic), or few output channels (igemm's tile is one
  // 8-lane vector, one broadcast per FMA; here one broadcast feeds 3 FMAs).
  return g.Cg <= 4 || (Nout <= 8 && g.Cg <= 64);
}

}  // namespace conv_detail
}  // namespace cnnx
