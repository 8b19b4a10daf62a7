// Elementwise joins and concatenation (see cnnx/eltwise.h). Memory-bound
// loops over contiguous floats: the compiler vectorises them, and large
// ones split across threads.
#include "cnnx/eltwise.h"

#include <cstring>

#include "cnnx/threading.h"

#ifdef CNNX_HAVE_OPENMP
#include <omp.h>
#endif

namespace cnnx {

namespace {

// Runs f(begin, end) over [0, n), on several threads when n is large.
template <class F>
void split(int64_t n, double flops_per_value, F f) {
  const int nt = threads_for_flops(flops_per_value * static_cast<double>(n));
  if (nt <= 1) {
    f(int64_t{0}, n);
    return;
  }
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num(), T = omp_get_num_threads();
    const int64_t b = n * t / T / 16 * 16, e = t + 1 == T ? n : n * (t + 1) / T / 16 * 16;
    f(b, e);
  }
#else
  f(int64_t{0}, n);
#endif
}

void put(float* dst, const float* src, int64_t n, bool accumulate, float scale) {
  if (accumulate) {
    for (int64_t i = 0; i < n; ++i) dst[i] += scale * src[i];
  } else if (scale == 1.0f) {
    std::memcpy(dst, src, sizeof(float) * static_cast<size_t>(n));
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = scale * src[i];
  }
}

}  // namespace

void eltwise_forward(EltwiseKind kind, const float* const* x, int n_in, float* y, int64_t n) {
  split(n, static_cast<double>(n_in), [&](int64_t b, int64_t e) {
    const int64_t m = e - b;
    float* yo = y + b;
    const float* x0 = x[0] + b;
    const float* x1 = x[1] + b;
    switch (kind) {
      case EltwiseKind::sub:
        for (int64_t i = 0; i < m; ++i) yo[i] = x0[i] - x1[i];
        return;
      case EltwiseKind::mul:
        for (int64_t i = 0; i < m; ++i) yo[i] = x0[i] * x1[i];
        for (int j = 2; j < n_in; ++j) {
          const float* xj = x[j] + b;
          for (int64_t i = 0; i < m; ++i) yo[i] *= xj[i];
        }
        return;
      case EltwiseKind::add:
      case EltwiseKind::avg: {
        for (int64_t i = 0; i < m; ++i) yo[i] = x0[i] + x1[i];
        for (int j = 2; j < n_in; ++j) {
          const float* xj = x[j] + b;
          for (int64_t i = 0; i < m; ++i) yo[i] += xj[i];
        }
        if (kind == EltwiseKind::avg) {
          const float s = 1.0f / static_cast<float>(n_in);
          for (int64_t i = 0; i < m; ++i) yo[i] *= s;
        }
        return;
      }
    }
  });
}

void eltwise_backward(EltwiseKind kind, const float* const* x, int n_in, const float* dy,
                      float* const* dx, const bool* accumulate, int64_t n) {
  split(n, 2.0 * n_in, [&](int64_t b, int64_t e) {
    const int64_t m = e - b;
    for (int j = 0; j < n_in; ++j) {
      if (!dx[j]) continue;
      float* d = dx[j] + b;
      const bool acc = accumulate[j];
      if (kind == EltwiseKind::mul) {
        // d x_j = dy * prod of the other inputs
        for (int64_t i = 0; i < m; ++i) {
          float p = dy[b + i];
          for (int o = 0; o < n_in; ++o)
            if (o != j) p *= x[o][b + i];
          d[i] = acc ? d[i] + p : p;
        }
        continue;
      }
      const float scale = kind == EltwiseKind::avg               ? 1.0f / static_cast<float>(n_in)
                          : (kind == EltwiseKind::sub && j == 1) ? -1.0f
                                                                 : 1.0f;
      put(d, dy + b, m, acc, scale);
    }
  });
}

void concat_forward(const float* const* x, int n_in, const int64_t* inner, int64_t outer,
                    float* y) {
  int64_t row = 0;
  for (int i = 0; i < n_in; ++i) row += inner[i];
  split(outer, static_cast<double>(row), [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      float* dst = y + o * row;
      for (int i = 0; i < n_in; ++i) {
        std::memcpy(dst, x[i] + o * inner[i], sizeof(float) * static_cast<size_t>(inner[i]));
        dst += inner[i];
      }
    }
  });
}

void concat_backward(const float* dy, int n_in, const int64_t* inner, int64_t outer,
                     float* const* dx, const bool* accumulate) {
  int64_t row = 0;
  for (int i = 0; i < n_in; ++i) row += inner[i];
  split(outer, static_cast<double>(row), [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      const float* src = dy + o * row;
      for (int i = 0; i < n_in; ++i) {
        if (dx[i]) put(dx[i] + o * inner[i], src, inner[i], accumulate[i], 1.0f);
        src += inner[i];
      }
    }
  });
}

}  // namespace cnnx
