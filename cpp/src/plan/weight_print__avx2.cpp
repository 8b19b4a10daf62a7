// AVX2 build of the weight fingerprint.
#define CNNX_WP_NS wp_avx2
#define CNNX_WP_V 8
#include "plan/weight_print_impl.h"
