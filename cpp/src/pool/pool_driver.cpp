// Threaded drivers shared by every pooling front end: pick the ISA's
// kernels, decide how many threads the work pays for, split it so that no
// two threads ever write the same element.
#include <algorithm>
#include <atomic>
#include <cstring>

#include "cnnx/threading.h"
#include "pool/pool_internal.h"

#ifdef CNNX_HAVE_OPENMP
#include <omp.h>
#endif

namespace cnnx {
namespace pool {

namespace {

// Pooling is memory-bound: a thread pays for its fork/join (a few
// microseconds) once it streams a few hundred kilobytes. threads_for_flops
// grants one thread per ~1M "flops"; one element moved costs about as much
// time as 16 flops of a compute-bound kernel.
int threads_for_elements(double elements, int64_t tasks) {
  const int nt = threads_for_flops(16.0 * elements);
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(nt, tasks)));
}

// Calls f(begin, end) on nt threads over [0, total). Threads take chunks of
// about 1/8 of their share from a shared counter: on a busy machine a thread
// that loses its core for a while no longer holds half of the work.
template <class F>
void split(int64_t total, int nt, F f) {
  if (total <= 0) return;
#ifdef CNNX_HAVE_OPENMP
  if (nt > 1) {
    const int64_t chunk = std::max<int64_t>(1, total / (int64_t(nt) * 8));
    std::atomic<int64_t> next{0};
#pragma omp parallel num_threads(nt)
    {
      for (;;) {
        const int64_t b = next.fetch_add(chunk, std::memory_order_relaxed);
        if (b >= total) break;
        f(b, std::min(total, b + chunk));
      }
    }
    return;
  }
#endif
  f(0, total);
}

double window_reads(const Plan& p) {
  // Elements read by a forward pass (windows may overlap).
  double rh = 0, rw = 0;
  for (int64_t i = 0; i < p.oh; ++i) rh += double(p.h_hi[i] - p.h_lo[i]);
  for (int64_t j = 0; j < p.ow; ++j) rw += double(p.w_hi[j] - p.w_lo[j]);
  return double(p.n) * double(p.c) * rh * rw;
}

const Kernels& active() { return kernels_for(active_isa()); }

// For kernels that add into what they stored (overlapping max backward): the
// widest level at or below the active one whose vectors divide n_C, so that
// no partial vector is stored with a mask and read back (measured at n_C=8,
// 3x3 stride 1: AVX-512 with masks 42 us, AVX2 whole vectors 14 us).
const Kernels& read_back_kernels(int64_t c) {
  const int top = static_cast<int>(active_isa());
  for (int lvl = top; lvl >= 0; --lvl) {
    const Kernels& k = kernels_for(static_cast<Isa>(lvl));
    if (c % k.width == 0) return k;
  }
  return kernels_for(static_cast<Isa>(top));
}

// Mean window area of at least 9 pixels.
bool big_windows(const Plan& p) {
  double rh = 0, rw = 0;
  for (int64_t i = 0; i < p.oh; ++i) rh += double(p.h_hi[i] - p.h_lo[i]);
  for (int64_t j = 0; j < p.ow; ++j) rw += double(p.w_hi[j] - p.w_lo[j]);
  return rh * rw >= 9.0 * double(p.oh) * double(p.ow);
}

}  // namespace

void run_max_forward(const Plan& p, const float* x, float* y) {
  if (p.n == 0 || p.c == 0) return;
  const Kernels& k = active();
  const int64_t rows = p.n * p.oh;
  const bool dilated = p.dil_h > 1 || p.dil_w > 1;
  const double work =
      window_reads(p) / (dilated ? double(p.dil_h * p.dil_w) : 1.0) + double(rows) * p.ow * p.c;
  const ForwardRowsFn f = dilated         ? k.max_forward_dilated
                          : p.c % k.width ? k.max_forward_window
                                          : k.max_forward;
  split(rows, threads_for_elements(work, rows), [&](int64_t b, int64_t e) { f(p, x, y, b, e); });
}

void run_avg_forward(const Plan& p, const float* x, float* y) {
  if (p.n == 0 || p.c == 0) return;
  const Kernels& k = active();
  const int64_t rows = p.n * p.oh;
  const double work = window_reads(p) + double(rows) * p.ow * p.c;
  // Measured (32x56x56x64, AVX-512): walking each output row's input rows
  // as one stream wins for large windows (8x8: 0.75 vs 1.5 ms) and loses
  // for 2x2 (2.4 vs 1.8 ms), where whole windows per output pixel are better.
  const ForwardRowsFn f =
      big_windows(p) && p.c % k.width == 0 ? k.avg_forward_stream : k.avg_forward;
  split(rows, threads_for_elements(work, rows), [&](int64_t b, int64_t e) { f(p, x, y, b, e); });
}

void run_avg_backward(const Plan& p, const float* dy, float* dx) {
  if (p.n == 0 || p.c == 0) return;
  const Kernels& k = active();
  const int64_t rows = p.n * p.h;
  const double work = window_reads(p) + double(rows) * p.w * p.c;
  split(rows, threads_for_elements(work, rows),
        [&](int64_t b, int64_t e) { k.avg_backward(p, dy, dx, b, e); });
}

void run_max_backward(const Plan& p, const Axis& ah, const Axis& aw, const float* x,
                      const float* dy, float* dx) {
  if (p.n == 0 || p.c == 0) return;
  const Kernels& k = active();
  const int64_t C = p.c, rs = p.w * p.c;
  const bool dilated = p.dil_h > 1 || p.dil_w > 1;
  const double work = 2.0 * window_reads(p) + double(p.n) * p.h * rs;
  if (ah.tiles && aw.tiles && !dilated) {
    // Every dx element lies in exactly one window: one store each.
    const int64_t rows = p.n * p.oh;
    split(rows, threads_for_elements(work, rows), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r)
        k.max_backward_tiled(p, x, dy, dx, r / p.oh, r % p.oh, r % p.oh + 1, 0, C);
    });
    return;
  }
  const Kernels& kb = read_back_kernels(C);
  if (ah.disjoint && !dilated) {
    // Output row i owns input rows [band(i), band(i+1)): its window and the
    // rows no window reads. Each task zeroes its band and scatters into it,
    // so every dx element is written by exactly one thread.
    const int64_t rows = p.n * p.oh;
    split(rows, threads_for_elements(work, rows), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const int64_t img = r / p.oh, i = r % p.oh;
        const int64_t lo = i == 0 ? 0 : p.h_lo[i];
        const int64_t hi = i == p.oh - 1 ? p.h : p.h_lo[i + 1];
        std::memset(dx + (img * p.h + lo) * rs, 0, sizeof(float) * size_t((hi - lo) * rs));
        kb.max_backward(p, x, dy, dx, img, i, i + 1, 0, C);
      }
    });
    return;
  }
  // Windows overlap across rows: one task per (image, channel chunk); a task
  // zeroes and accumulates only its own channels of its own image.
  int nt = threads_for_elements(work, p.n * ((C + 15) / 16));
  int64_t chunks = 1;
  if (p.n < nt) chunks = std::min<int64_t>((C + 15) / 16, (nt + p.n - 1) / p.n);
  // Chunk width: a multiple of 16 floats (64 bytes) so no cache line is shared.
  const int64_t width = ((C + chunks - 1) / chunks + 15) / 16 * 16;
  chunks = (C + width - 1) / width;
  const int64_t tasks = p.n * chunks;
  split(tasks, std::min<int64_t>(nt, tasks), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t img = t / chunks, ch = t % chunks;
      const int64_t c0 = ch * width, c1 = std::min(C, c0 + width);
      float* d = dx + img * p.h * rs;
      if (chunks == 1) {
        std::memset(d, 0, sizeof(float) * size_t(p.h * rs));
      } else {
        for (int64_t q = 0; q < p.h * p.w; ++q)
          std::memset(d + q * C + c0, 0, sizeof(float) * size_t(c1 - c0));
      }
      (dilated ? kb.max_backward_dilated : kb.max_backward)(p, x, dy, dx, img, 0, p.oh, c0, c1);
    }
  });
}

}  // namespace pool
}  // namespace cnnx
