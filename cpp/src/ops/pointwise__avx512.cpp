// Extra elementwise activations compiled for AVX-512 (see pointwise_impl.h).
#include "common/vec_avx512.h"
#define CNNX_PW_NS pointwise_avx512
#define CNNX_PW_VEC ::cnnx::vec_avx512::V
#include "ops/pointwise_impl.h"
