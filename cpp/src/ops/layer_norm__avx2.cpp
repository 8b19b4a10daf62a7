// Layer-normalisation loops compiled for AVX2 + FMA (see layer_norm_impl.h).
#define CNNX_LN_NS layer_norm_avx2
#include "ops/layer_norm_impl.h"
