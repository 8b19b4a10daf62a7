// Extra elementwise activations compiled for AVX2 + FMA (see pointwise_impl.h).
#include "common/vec_avx2.h"
#define CNNX_PW_NS pointwise_avx2
#define CNNX_PW_VEC ::cnnx::vec_avx2::V
#include "ops/pointwise_impl.h"
