// Layer-normalisation loops compiled for AVX-512 (see layer_norm_impl.h).
#include "common/vec_avx512.h"
#define CNNX_LN_NS layer_norm_avx512
#define CNNX_LN_VEC ::cnnx::vec_avx512::V
#include "ops/layer_norm_impl.h"
