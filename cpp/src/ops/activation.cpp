// Elementwise activations and softmax (portable; the compiler vectorises the
// simple loops). Large buffers are split over threads.
#include "cnnx/activation.h"

#include <cmath>
#include <limits>

#include "cnnx/cpu.h"
#include "common/scratch.h"
#include "ops/ops_common.h"

#define CNNX_ACT_NS act_generic
#include "ops/activation_impl.h"
#undef CNNX_ACT_NS

namespace cnnx {

const ActKernels& act_kernels() {
  switch (active_isa()) {
    case Isa::avx512: return act_avx512::kernels;
    case Isa::avx2: return act_avx2::kernels;
    default: return act_generic::kernels;
  }
}

using ops_detail::parallel_range;
using ops_detail::threads_for_bytes;

namespace {

// Two streams in, one out: bytes touched ~ 12 n.
template <class F>
void map2(int64_t n, double bytes_per_elem, F&& f) {
  parallel_range(n, threads_for_bytes(bytes_per_elem * n), f);
}

}  // namespace

void relu_forward(const float* x, float* y, int64_t n) {
  map2(n, 8, [=](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] = x[i] < 0.0f ? 0.0f : x[i];  // NaN stays NaN
  });
}

void relu_backward(const float* dy, const float* x, float* dx, int64_t n) {
  map2(n, 12, [=](int64_t b, int64_t e) {
    // dy read on both branches: a select the compiler vectorises (a load
    // only where x > 0 stayed a scalar branch, mispredicted on half the
    // values: ~5 ns per value, 30x the forward pass).
    for (int64_t i = b; i < e; ++i) {
      const float g = dy[i];
      dx[i] = x[i] > 0.0f ? g : 0.0f;
    }
  });
}

void leaky_relu_forward(const float* x, float* y, int64_t n, float alpha) {
  map2(n, 8, [=](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] = x[i] > 0.0f ? x[i] : alpha * x[i];
  });
}

void leaky_relu_backward(const float* dy, const float* x, float* dx, int64_t n, float alpha) {
  map2(n, 12, [=](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) dx[i] = x[i] > 0.0f ? dy[i] : alpha * dy[i];
  });
}

void sigmoid_forward(const float* x, float* y, int64_t n) {
  const ActKernels& k = act_kernels();
  parallel_range(n, threads_for_flops(20.0 * n),
                 [=, &k](int64_t b, int64_t e) { k.sigmoid(x + b, y + b, e - b); });
}

void sigmoid_backward(const float* dy, const float* y, float* dx, int64_t n) {
  map2(n, 12, [=](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) dx[i] = dy[i] * y[i] * (1.0f - y[i]);
  });
}

void tanh_forward(const float* x, float* y, int64_t n) {
  const ActKernels& k = act_kernels();
  parallel_range(n, threads_for_flops(25.0 * n),
                 [=, &k](int64_t b, int64_t e) { k.tanh(x + b, y + b, e - b); });
}

void tanh_backward(const float* dy, const float* y, float* dx, int64_t n) {
  map2(n, 12, [=](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
  });
}

namespace {

// Softmax along an axis with inner > 1: each k-slice is a contiguous vector
// of `inner` values (rows, inner == 1, use the per-ISA loop).
void softmax_strided(const float* x, float* y, int64_t K, int64_t inner) {
  float* m = thread_scratch(ScratchSlot::op_0, static_cast<size_t>(inner));
  float* s = thread_scratch(ScratchSlot::op_1, static_cast<size_t>(inner));
  for (int64_t i = 0; i < inner; ++i) {
    m[i] = -std::numeric_limits<float>::infinity();
    s[i] = 0.0f;
  }
  for (int64_t k = 0; k < K; ++k) {
    const float* xk = x + k * inner;
    for (int64_t i = 0; i < inner; ++i) m[i] = xk[i] > m[i] ? xk[i] : m[i];
  }
  for (int64_t k = 0; k < K; ++k) {
    const float* xk = x + k * inner;
    float* yk = y + k * inner;
    for (int64_t i = 0; i < inner; ++i) {
      const float t = std::exp(xk[i] - m[i]);
      yk[i] = t;
      s[i] += t;
    }
  }
  for (int64_t i = 0; i < inner; ++i) s[i] = 1.0f / s[i];
  for (int64_t k = 0; k < K; ++k) {
    float* yk = y + k * inner;
    for (int64_t i = 0; i < inner; ++i) yk[i] *= s[i];
  }
}

}  // namespace

void softmax_forward(const float* x, float* y, int64_t outer, int64_t K, int64_t inner) {
  if (outer <= 0 || K <= 0 || inner <= 0) return;
  const int nt = threads_for_flops(25.0 * outer * K * inner);
  parallel_range(
      outer, outer > 1 ? nt : 1,
      [=](int64_t b, int64_t e) {
        if (inner == 1) {
          act_kernels().softmax_rows(x + b * K, y + b * K, e - b, K);
        } else {
          for (int64_t o = b; o < e; ++o)
            softmax_strided(x + o * K * inner, y + o * K * inner, K, inner);
        }
      },
      1);
}

void softmax_backward(const float* dy, const float* y, float* dx, int64_t outer, int64_t K,
                      int64_t inner) {
  if (outer <= 0 || K <= 0 || inner <= 0) return;
  const int nt = threads_for_bytes(12.0 * outer * K * inner);
  parallel_range(
      outer, outer > 1 ? nt : 1,
      [=](int64_t b, int64_t e) {
        for (int64_t o = b; o < e; ++o) {
          const int64_t base = o * K * inner;
          if (inner == 1) {
            double dot = 0.0;
            for (int64_t k = 0; k < K; ++k) dot += static_cast<double>(dy[base + k]) * y[base + k];
            const float d = static_cast<float>(dot);
            for (int64_t k = 0; k < K; ++k) dx[base + k] = y[base + k] * (dy[base + k] - d);
          } else {
            float* s = thread_scratch(ScratchSlot::op_0, static_cast<size_t>(inner));
            for (int64_t i = 0; i < inner; ++i) s[i] = 0.0f;
            for (int64_t k = 0; k < K; ++k)
              for (int64_t i = 0; i < inner; ++i)
                s[i] += dy[base + k * inner + i] * y[base + k * inner + i];
            for (int64_t k = 0; k < K; ++k)
              for (int64_t i = 0; i < inner; ++i) {
                const int64_t j = base + k * inner + i;
                dx[j] = y[j] * (dy[j] - s[i]);
              }
          }
        }
      },
      1);
}

}  // namespace cnnx
