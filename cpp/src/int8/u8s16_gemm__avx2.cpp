// AVX2 micro-kernel without VNNI: activations and weights widened to int16
// (at packing time), vpmaddwd sums two exact products into each int32 lane.
// vpmaddubsw would do 4 products per lane but saturates its int16 pair sums
// (255*127*2 > 32767), which would make results depend on the ISA unless
// weights were limited to 7 bits; the widened form is exact for the full
// int8 range, at about 3/4 of vpmaddubsw's multiply-add rate.
#include "int8/u8s8_gemm_ymm_impl.h"

namespace cnnx {
namespace {

struct DotMaddwd {
  static __m256i step(__m256i acc, __m256i a, __m256i b) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
  }
};

const QGemmUkernel kRows[6] = {
    qymm::gemm_kernel<1, 2, DotMaddwd>, qymm::gemm_kernel<2, 2, DotMaddwd>,
    qymm::gemm_kernel<3, 2, DotMaddwd>, qymm::gemm_kernel<4, 2, DotMaddwd>,
    qymm::gemm_kernel<5, 2, DotMaddwd>, qymm::gemm_kernel<6, 2, DotMaddwd>};

}  // namespace

const QGemmConfig kQGemmAvx2 = {
    "u8s16_gemm_6x16__avx2", 6, 16, 2, qymm::gemm_kernel<6, 2, DotMaddwd>, kRows};

}  // namespace cnnx
