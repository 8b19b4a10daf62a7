// 2x2 max pooling with stride 2 and no padding (the pool of LeNet and most
// CNNs) straight from the input: each output vector is the max of four input
// vectors, so one pass reads x once and writes y once. The general path
// (window tables, running maxima kept in y) costs about 2x this on the small
// maps of a LeNet or a small ResNet.
//
// Written once over a SIMD vector type V (common/vec_*.h):
// pool_max2x2__avx512.cpp and pool_max2x2__avx2.cpp define CNNX_POOL_MAX2X2_V
// and include this file inside an anonymous namespace of their own.
//
// NaN: a window holding a NaN gives NaN, as the general path does.

using V = CNNX_POOL_MAX2X2_V;

inline V::reg max4(V::reg a, V::reg b, V::reg c, V::reg d) {
  // max returns its second operand when either is NaN: mark NaNs apart.
  const V::mask nan = V::mor(V::mor(V::isnan(a), V::isnan(b)), V::mor(V::isnan(c), V::isnan(d)));
  const V::reg m = V::max(V::max(a, b), V::max(c, d));
  return V::select(nan, V::set1(__builtin_nanf("")), m);
}

void rows(const float* x, float* y, int64_t h, int64_t w, int64_t c, int64_t oh, int64_t ow,
          int64_t r0, int64_t r1) {
  const int64_t full = c / V::W * V::W;
  const V::tail tail = V::tail_mask(c - full);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t img = r / oh, i = r % oh;
    const float* a = x + ((img * h + 2 * i) * w) * c;
    const float* b = a + w * c;
    float* out = y + r * ow * c;
    for (int64_t j = 0; j < ow; ++j) {
      const float* a0 = a + 2 * j * c;
      const float* b0 = b + 2 * j * c;
      float* o = out + j * c;
      for (int64_t k = 0; k < full; k += V::W)
        V::store(o + k,
                 max4(V::load(a0 + k), V::load(a0 + c + k), V::load(b0 + k), V::load(b0 + c + k)));
      if (full < c)
        V::store_tail(o + full, tail,
                      max4(V::load_tail(a0 + full, tail), V::load_tail(a0 + c + full, tail),
                           V::load_tail(b0 + full, tail), V::load_tail(b0 + c + full, tail)));
    }
  }
}

void max_pool_2x2(const PoolShape& s, const float* x, float* y) {
  const int64_t oh = s.h / 2, ow = s.w / 2, total = s.n * oh;
  if (total <= 0 || ow <= 0 || s.c <= 0) return;
  const int nt = threads_for_flops(8.0 * s.n * s.h * s.w * s.c);
  if (nt <= 1) {
    rows(x, y, s.h, s.w, s.c, oh, ow, 0, total);
    return;
  }
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
  {
    const int64_t T = omp_get_num_threads(), t = omp_get_thread_num();
    rows(x, y, s.h, s.w, s.c, oh, ow, total * t / T, total * (t + 1) / T);
  }
#endif
}
