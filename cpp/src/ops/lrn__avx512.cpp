// Local response normalisation loops compiled for AVX-512 (see lrn_impl.h).
#include "common/vec_avx512.h"
#define CNNX_LRN_NS lrn_avx512
#define CNNX_LRN_VEC ::cnnx::vec_avx512::V
#include "ops/lrn_impl.h"
