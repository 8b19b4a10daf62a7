// AVX-VNNI micro-kernel (Alder Lake and later AVX2 hosts): vpdpbusd in its
// VEX form on ymm. This CPU family may lack AVX-512, so this is the fast
// int8 path there. It cannot run on a CPU without AVX-VNNI (the development
// machine, a Zen 4, has only the EVEX form): the same code is compiled for
// the EVEX form in u8s8_gemm_avxvnni_evex__avx512vnni.cpp and tested there.
#include "int8/u8s8_gemm_ymm_impl.h"

namespace cnnx {
namespace {

struct DotVnniVex {
  static __m256i step(__m256i acc, __m256i a, __m256i b) {
    return _mm256_dpbusd_avx_epi32(acc, a, b);
  }
};

const QGemmUkernel kRows[6] = {
    qymm::gemm_kernel<1, 2, DotVnniVex>, qymm::gemm_kernel<2, 2, DotVnniVex>,
    qymm::gemm_kernel<3, 2, DotVnniVex>, qymm::gemm_kernel<4, 2, DotVnniVex>,
    qymm::gemm_kernel<5, 2, DotVnniVex>, qymm::gemm_kernel<6, 2, DotVnniVex>};

}  // namespace

const QGemmConfig kQGemmAvxVnni = {"u8s8_gemm_6x16__avxvnni",           6,    16, 1,
                                   qymm::gemm_kernel<6, 2, DotVnniVex>, kRows};

}  // namespace cnnx
