// Local response normalisation loops compiled for AVX2 + FMA (see lrn_impl.h).
#include "common/vec_avx2.h"
#define CNNX_LRN_NS lrn_avx2
#define CNNX_LRN_VEC ::cnnx::vec_avx2::V
#include "ops/lrn_impl.h"
