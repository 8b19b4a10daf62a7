// Layer-normalisation loops compiled for AVX-512 (see layer_norm_impl.h).
#define CNNX_LN_NS layer_norm_avx512
#include "ops/layer_norm_impl.h"
