// Layout loops compiled for AVX-512 (see layout_impl.h).
#define CNNX_LAYOUT_NS layout_avx512
#include "layout/layout_impl.h"
