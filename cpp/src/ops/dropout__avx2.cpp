// Dropout loops compiled for AVX2 (see dropout_impl.h).
#define CNNX_DROP_NS drop_avx2
#include "ops/dropout_impl.h"
