// Layer-normalisation loops compiled for AVX2 + FMA (see layer_norm_impl.h).
#include "common/vec_avx2.h"
#define CNNX_LN_NS layer_norm_avx2
#define CNNX_LN_VEC ::cnnx::vec_avx2::V
#include "ops/layer_norm_impl.h"
