// Batch-norm loops compiled for AVX2 + FMA (see batchnorm_impl.h).
#define CNNX_BN_NS bn_avx2
#include "ops/batchnorm_impl.h"
