// Batch-norm loops compiled for AVX-512 (see batchnorm_impl.h).
#define CNNX_BN_NS bn_avx512
#include "ops/batchnorm_impl.h"
