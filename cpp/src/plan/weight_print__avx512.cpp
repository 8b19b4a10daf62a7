// AVX-512 build of the weight fingerprint.
#define CNNX_WP_NS wp_avx512
#define CNNX_WP_V 16
#include "plan/weight_print_impl.h"
