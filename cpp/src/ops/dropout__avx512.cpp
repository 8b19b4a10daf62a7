// Dropout loops compiled for AVX-512 (see dropout_impl.h).
#define CNNX_DROP_NS drop_avx512
#include "ops/dropout_impl.h"
