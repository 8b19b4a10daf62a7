// AVX2 build of the depthwise kernels.
#define CNNX_DW_NS dw_avx2
#define CNNX_DW_V 8
#include "conv/conv_depthwise_impl.h"
