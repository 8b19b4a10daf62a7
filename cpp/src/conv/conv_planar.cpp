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
  // Very few input channels, and rows long enough to fill 16-pixel vectors.
  return g.Cg <= 4 && g.OW >= 12 && Nout >= 4;
}

}  // namespace conv_detail
}  // namespace cnnx
