// The BLIS five-loop frame around the per-ISA micro-kernel:
//
//   jc: N in blocks of NC      (B block KC x NC shared by all threads, in L3)
//    pc: K in blocks of KC     (packed B panels; beta applies to the first)
//     ic: M in blocks of MC    (packed A block MC x KC per thread, in L2)
//      jr: NR columns          (B micro-panel KC x NR, in L1)
//       ir: MR rows            (micro-kernel, accumulators in registers)
//
// Threads split the M and N ranges (a 2-D grid chosen from the shape),
// never K, so no reduction is needed and results do not depend on the
// thread count.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "cnnx/gemm.h"
#include "cnnx/threading.h"
#include "common/scratch.h"
#include "gemm/ukernel.h"

#ifdef CNNX_HAVE_OPENMP
#include <omp.h>
#endif

namespace cnnx {

const GemmConfig& gemm_config_for(Isa isa) {
  switch (isa) {
    case Isa::avx512: return kGemmAvx512;
    case Isa::avx2: return kGemmAvx2;
    default: return kGemmGeneric;
  }
}

namespace {
std::atomic<const GemmConfig*> g_variant{nullptr};
}

bool set_gemm_variant(const char* name) {
  if (!name || !*name) {
    g_variant.store(nullptr);
    return true;
  }
  if (!std::strcmp(kGemmGeneric.name, name)) {
    g_variant.store(&kGemmGeneric);
    return true;
  }
  for (int i = 0; i < kGemmAvx2VariantCount; ++i)
    if (!std::strcmp(kGemmAvx2Variants[i].name, name)) {
      if (detected_isa() < Isa::avx2) return false;
      g_variant.store(&kGemmAvx2Variants[i]);
      return true;
    }
  for (int i = 0; i < kGemmAvx512VariantCount; ++i)
    if (!std::strcmp(kGemmAvx512Variants[i].name, name)) {
      if (detected_isa() < Isa::avx512) return false;
      g_variant.store(&kGemmAvx512Variants[i]);
      return true;
    }
  return false;
}

const GemmConfig& gemm_config() {
  const GemmConfig* v = g_variant.load(std::memory_order_relaxed);
  return v ? *v : gemm_config_for(active_isa());
}

GemmKernelInfo gemm_kernel_info() {
  const GemmConfig& g = gemm_config();
  return GemmKernelInfo{g.name, g.mr, g.nr, g.mc, g.kc, g.nc};
}

namespace {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Up to this many NR-wide B panels, A is read in place (see PackSource::rows).
constexpr int64_t kDirectAMaxPanels = 4;
// B panels packed together when each is used right after packing (an L2-sized
// group: 4 x 512 x 16 floats on AVX2).
constexpr int64_t kPanelGroup = 4;

// K == 0: the product is empty, only the scaling and the epilogue remain.
void scale_only(int64_t M, int64_t N, float beta, float* C, int64_t ldc, const GemmEpilogue& ep) {
  for (int64_t i = 0; i < M; ++i) {
    float* c = C + i * ldc;
    for (int64_t j = 0; j < N; ++j) {
      float v = beta == 0.0f ? 0.0f : beta * c[j];
      if (ep.bias) v += ep.bias[j];
      if (ep.act == Activation::relu) v = std::max(v, 0.0f);
      c[j] = v;
    }
  }
}

// Split `nt` threads into tm x tn so that each thread's block of C is as
// square (in micro-tiles) as possible: fewer redundant packs, better balance.
void thread_grid(int nt, int64_t M, int64_t N, const GemmConfig& g, int* tm, int* tn) {
  double best = -1.0;
  *tm = nt;
  *tn = 1;
  // From tm = nt down: on a tie, splitting M wins, since threads then pack
  // disjoint A blocks while the B panels are packed cooperatively anyway.
  for (int a = nt; a >= 1; --a) {
    if (nt % a) continue;
    const int b = nt / a;
    const double rows = std::ceil(static_cast<double>(ceil_div(M, g.mr)) / a);
    const double cols = std::ceil(static_cast<double>(ceil_div(N, g.nr)) / b);
    // Balance first (idle threads are the worst waste), then squareness.
    const double used =
        static_cast<double>(ceil_div(M, g.mr)) * ceil_div(N, g.nr) / (rows * cols * nt);
    const double score =
        used * 4.0 + std::min(rows * g.mr, cols * g.nr) / std::max(rows * g.mr, cols * g.nr);
    if (score > best) {
      best = score;
      *tm = a;
      *tn = b;
    }
  }
}

// Even split of [0, total) in units of `unit` into `parts`; part p gets [*b, *e).
void split_range(int64_t total, int64_t unit, int parts, int p, int64_t* b, int64_t* e) {
  const int64_t units = ceil_div(total, unit);
  const int64_t per = units / parts, extra = units % parts;
  const int64_t ub = p * per + std::min<int64_t>(p, extra);
  const int64_t ue = ub + per + (p < extra ? 1 : 0);
  *b = std::min(total, ub * unit);
  *e = std::min(total, ue * unit);
}

}  // namespace

void sgemm_packed_sources(int64_t M, int64_t N, int64_t K, float alpha, const PackSource& A,
                          const PackSource& B, float beta, float* C, int64_t ldc,
                          const GemmEpilogue& ep, int threads) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    scale_only(M, N, beta, C, ldc, ep);
    return;
  }
  const GemmConfig& g = gemm_config();
  const double flops = 2.0 * M * N * K;
  int nt = threads > 0 ? std::min(threads, get_num_threads()) : threads_for_flops(flops);
#ifndef CNNX_HAVE_OPENMP
  nt = 1;
#endif
  const int64_t nc_max = std::min<int64_t>(g.nc, ceil_div(N, g.nr) * g.nr);
  // K in equal blocks of at most g.kc (576 = 2 x 288, not 512 + 64: a thin
  // last block costs a whole extra pass over C for little work).
  const int64_t k_blocks = ceil_div(K, g.kc);
  const int64_t kc_max = std::min<int64_t>(g.kc, ceil_div(ceil_div(K, k_blocks), 8) * 8);
  float* bpack = thread_scratch(ScratchSlot::gemm_b, static_cast<size_t>(nc_max * kc_max));

  int tm, tn;
  thread_grid(nt, M, N, g, &tm, &tn);
  // Packing an A block pays off when many B panels reuse it; with few
  // (a narrow N, as in 1x1 convolutions) reading A in place is cheaper.
  const bool direct_a = A.rows != nullptr && ceil_div(N, g.nr) <= kDirectAMaxPanels;

  auto body = [&](int tid, int nthreads) {
    const int ti = nthreads == 1 ? 0 : tid / tn;
    const int tj = nthreads == 1 ? 0 : tid % tn;
    int64_t m_begin, m_end;
    split_range(M, g.mr, nthreads == 1 ? 1 : tm, ti, &m_begin, &m_end);
    // Each thread reads only the B panels it packs when threads split N
    // alone: no shared packing, no barriers. If its rows also fit one A
    // block, each B panel is used once, right after packing it into an
    // L1-sized buffer (a packed B block would go out to memory and back).
    const bool own_b = nthreads == 1 || tm == 1;
    const bool panel_b = own_b && m_end - m_begin <= g.mc;
    float* apack = thread_scratch(ScratchSlot::gemm_a,
                                  static_cast<size_t>((g.mc + kPanelGroup * g.nr) * kc_max));
    float* bpanel = apack + g.mc * kc_max;
    // With own_b, a thread's panels live in its own part of bpack (the part
    // its share of the widest N block covers), so that a thread packing the
    // next N block never overwrites panels another thread still reads.
    int64_t own_first, own_last;
    split_range(ceil_div(nc_max, g.nr), 1, nthreads == 1 ? 1 : tn, tj, &own_first, &own_last);
    float* bown = bpack + own_first * g.nr * kc_max;

    for (int64_t jc = 0; jc < N; jc += g.nc) {
      const int64_t nc = std::min<int64_t>(g.nc, N - jc);
      const int64_t n_panels = ceil_div(nc, g.nr);
      int64_t p_begin, p_end;  // this thread's share of the B micro-panels
      split_range(n_panels, 1, nthreads == 1 ? 1 : tn, tj, &p_begin, &p_end);
      for (int64_t pc = 0; pc < K; pc += kc_max) {
        const int64_t kc = std::min<int64_t>(kc_max, K - pc);
        const bool last_k = pc + kc >= K;
        if (own_b) {
          if (!panel_b)
            for (int64_t p = p_begin; p < p_end; ++p) {
              const int64_t rows = std::min<int64_t>(g.nr, nc - p * g.nr);
              B.pack(B.ctx, jc + p * g.nr, rows, pc, kc, g.nr, bown + (p - p_begin) * g.nr * kc);
            }
        } else {
          // Pack B: every thread packs a slice of the panels, then all wait.
#ifdef CNNX_HAVE_OPENMP
#pragma omp barrier
#endif
          for (int64_t p = tid; p < n_panels; p += nthreads) {
            const int64_t rows = std::min<int64_t>(g.nr, nc - p * g.nr);
            B.pack(B.ctx, jc + p * g.nr, rows, pc, kc, g.nr, bpack + p * g.nr * kc);
          }
#ifdef CNNX_HAVE_OPENMP
#pragma omp barrier
#endif
        }
        if (p_begin >= p_end) continue;
        UkernelArgs args{alpha, pc == 0 ? beta : 1.0f, nullptr, last_k ? ep.act : Activation::none};
        for (int64_t ic = m_begin; ic < m_end; ic += g.mc) {
          const int64_t mc = std::min<int64_t>(g.mc, m_end - ic);
          // Full row panels are read in place when A allows it; only a
          // ragged last panel is packed (its missing rows become zeros).
          const int64_t full = direct_a ? mc / g.mr * g.mr : 0;
          if (full < mc) A.pack(A.ctx, ic + full, mc - full, pc, kc, g.mr, apack + full * kc);
          for (int64_t p = p_begin; p < p_end; ++p) {
            const int64_t j = jc + p * g.nr;
            const int n = static_cast<int>(std::min<int64_t>(g.nr, N - j));
            args.bias = (last_k && ep.bias) ? ep.bias + j : nullptr;
            const float* bp = own_b ? bown + (p - p_begin) * g.nr * kc : bpack + p * g.nr * kc;
            if (panel_b) {
              // A group of panels at a time: whole source rows per k.
              const int64_t q = (p - p_begin) % kPanelGroup;
              if (q == 0) {
                const int64_t np = std::min<int64_t>(kPanelGroup, p_end - p);
                B.pack(B.ctx, j, std::min<int64_t>(np * g.nr, N - j), pc, kc, g.nr, bpanel);
              }
              bp = bpanel + q * g.nr * kc;
            }
            for (int64_t ir = 0; ir < mc; ir += g.mr) {
              const int m = static_cast<int>(std::min<int64_t>(g.mr, mc - ir));
              float* c = C + (ic + ir) * ldc + j;
              if (ir < full)
                g.ukernel(kc, A.rows + (ic + ir) * A.ld + pc, A.ld, bp, g.nr, c, ldc, m, n, args);
              else
                g.ukernel(kc, apack + ir * kc, 0, bp, g.nr, c, ldc, m, n, args);
            }
          }
        }
      }
    }
  };

  if (nt <= 1) {
    body(0, 1);
    return;
  }
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
  {
    const int got = omp_get_num_threads();
    if (got == tm * tn) {
      body(omp_get_thread_num(), got);
    } else if (omp_get_thread_num() == 0) {
      // The runtime gave fewer threads (nested region): run serially. The
      // other threads, if any, skip straight to the end of the region.
      body(0, 1);
    }
  }
#endif
}

void sgemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
           const GemmEpilogue& ep, int threads) {
  // A source: rows are M. B source: rows are N, so op(B)^T is what it packs.
  const StridedMatrix a{A, lda, ta == Trans::T};
  const StridedMatrix b{B, ldb, tb == Trans::N};
  sgemm_packed_sources(M, N, K, alpha, strided_source(&a), strided_source(&b), beta, C, ldc, ep,
                       threads);
}

}  // namespace cnnx
