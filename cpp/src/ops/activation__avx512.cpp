// Exp-based activation loops compiled for AVX-512 (see activation_impl.h).
#define CNNX_ACT_NS act_avx512
#include "ops/activation_impl.h"
