// The 2x2, stride 2, unpadded max pool fast path (pool_max2x2__avx512.cpp,
// pool_max2x2__avx2.cpp).
#pragma once
#include "cnnx/pool.h"

namespace cnnx {
namespace pool {

// y (n, h/2, w/2, c) from x (n, h, w, c); a trailing odd row/column is
// dropped (floor), as the general path does.
void max_pool_2x2_avx512(const PoolShape& s, const float* x, float* y);
void max_pool_2x2_avx2(const PoolShape& s, const float* x, float* y);

}  // namespace pool
}  // namespace cnnx
