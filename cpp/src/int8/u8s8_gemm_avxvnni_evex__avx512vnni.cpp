// The AVX-VNNI kernel (u8s8_gemm__avxvnni.cpp) compiled with the EVEX form
// of the same ymm instruction (AVX512-VNNI + VL), so that an AVX-512 VNNI
// CPU can run and test its loop, layout and store. Only the instruction
// encoding differs. Never the default kernel.
#include "int8/u8s8_gemm_ymm_impl.h"

namespace cnnx {
namespace {

struct DotVnniEvex {
  static __m256i step(__m256i acc, __m256i a, __m256i b) { return _mm256_dpbusd_epi32(acc, a, b); }
};

const QGemmUkernel kRows[6] = {
    qymm::gemm_kernel<1, 2, DotVnniEvex>, qymm::gemm_kernel<2, 2, DotVnniEvex>,
    qymm::gemm_kernel<3, 2, DotVnniEvex>, qymm::gemm_kernel<4, 2, DotVnniEvex>,
    qymm::gemm_kernel<5, 2, DotVnniEvex>, qymm::gemm_kernel<6, 2, DotVnniEvex>};

}  // namespace

const QGemmConfig kQGemmAvxVnniEvex = {"u8s8_gemm_6x16__avxvnni_evex",       6,    16, 1,
                                       qymm::gemm_kernel<6, 2, DotVnniEvex>, kRows};

}  // namespace cnnx
