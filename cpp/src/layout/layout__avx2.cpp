// Layout loops compiled for AVX2 (see layout_impl.h).
#define CNNX_LAYOUT_NS layout_avx2
#include "layout/layout_impl.h"
