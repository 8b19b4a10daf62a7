// AVX-512 build of the depthwise kernels.
#define CNNX_DW_NS dw_avx512
#define CNNX_DW_V 16
#include "conv/conv_depthwise_impl.h"
