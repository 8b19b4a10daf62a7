// The portable layout loops and the per-ISA dispatch (see layout_impl.h).
#include "cnnx/cpu.h"

#define CNNX_LAYOUT_NS layout_generic
#include "layout/layout_impl.h"
#undef CNNX_LAYOUT_NS

namespace cnnx {

const LayoutKernels& layout_kernels() {
  switch (active_isa()) {
    case Isa::avx512: return layout_avx512::kernels;
    case Isa::avx2: return layout_avx2::kernels;
    default: return layout_generic::kernels;
  }
}

}  // namespace cnnx
