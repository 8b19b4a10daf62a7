// Exp-based activation loops compiled for AVX2 + FMA (see activation_impl.h).
#define CNNX_ACT_NS act_avx2
#include "ops/activation_impl.h"
