// The implicit GEMM shared by the forward pass and the stride-1 backward-data
// pass: out[P, Nout] = patches[P, K] x wmat[K, Nout], patches packed on the
// fly. With few output channels the micro-tile would be mostly empty
// (8 channels in a 32-wide tile), so the product is computed transposed,
// out^T = wmat^T x patches^T, in pixel chunks per thread, and transposed
// back with bias and activation.
#include <algorithm>
#include <vector>

#include "cnnx/threading.h"
#include "common/scratch.h"
#include "conv/conv_internal.h"

#ifdef CNNX_HAVE_OPENMP
#include <omp.h>
#endif

namespace cnnx {
namespace conv_detail {

double tile_efficiency(int64_t M, int64_t N) {
  const GemmKernelInfo k = gemm_kernel_info();
  if (M <= 0 || N <= 0) return 1.0;
  return (static_cast<double>(M) / (ceil_div(M, k.mr) * k.mr)) *
         (static_cast<double>(N) / (ceil_div(N, k.nr) * k.nr));
}

namespace {

inline float apply(float v, Activation act) {
  return act == Activation::relu ? std::max(v, 0.0f) : v;
}

// The chunk [p_begin, p_end) of the transposed product.
void transposed_chunk(const PatchGeom& g, int64_t p_begin, int64_t p_end, int64_t Nout,
                      const float* wmat, int64_t ldw, const float* bias, Activation act, float* out,
                      int64_t ldo) {
  const int64_t pc = p_end - p_begin;
  const int64_t K = g.depth();
  float* t = thread_scratch(ScratchSlot::conv_0, static_cast<size_t>(Nout * pc));
  const StridedMatrix wt{wmat, ldw, true};  // (j, k) = wmat[k*ldw + j]
  PatchGeom gc = g;
  gc.p0 = g.p0 + p_begin;
  StridedMatrix xs{g.x + g.c0 + gc.p0 * g.C, g.C, false};
  const PackSource b = g.is_identity() ? strided_source(&xs) : patch_rows_source(&gc);
  sgemm_packed_sources(Nout, pc, K, 1.0f, strided_source(&wt), b, 0.0f, t, pc, {}, 1);
  // Transpose back, 8 pixels at a time so that reads of t stay in cache lines.
  for (int64_t p0 = 0; p0 < pc; p0 += 8) {
    const int64_t pe = std::min(pc, p0 + 8);
    for (int64_t p = p0; p < pe; ++p) {
      float* o = out + (p_begin + p) * ldo;
      if (bias) {
        for (int64_t j = 0; j < Nout; ++j) o[j] = apply(t[j * pc + p] + bias[j], act);
      } else {
        for (int64_t j = 0; j < Nout; ++j) o[j] = apply(t[j * pc + p], act);
      }
    }
  }
}

}  // namespace

void implicit_gemm(const PatchGeom& g, int64_t P, int64_t Nout, const float* wmat, int64_t ldw,
                   const float* bias, Activation act, float* out, int64_t ldo) {
  if (P <= 0 || Nout <= 0) return;
  const int64_t K = g.depth();
  // Winograd declines (returns false) on NaN/infinite values, which its
  // transforms would spread over whole tiles; the exact paths below take over.
  if (winograd_preferred(g, P, Nout) && winograd(g, P, Nout, wmat, ldw, bias, act, out, ldo))
    return;
  if (planar_flat_preferred(g, P, Nout)) {
    planar_flat(g, P, Nout, wmat, ldw, bias, act, out, ldo);
    return;
  }
  if (planar_preferred(g, P, Nout)) {
    planar_conv_avx512(g, P, Nout, wmat, ldw, bias, act, out, ldo);
    return;
  }
  if (igemm_preferred(g, Nout)) {
    igemm(g, P, Nout, wmat, ldw, bias, act, out, ldo);
    return;
  }
  const bool transposed = tile_efficiency(Nout, P) > 1.25 * tile_efficiency(P, Nout);
  if (!transposed) {
    // Pixel chunks whose input rows stay in L2 across the GEMM's K blocks;
    // threads take whole chunks (single-threaded GEMMs, no barriers).
    const GemmKernelInfo ki = gemm_kernel_info();
    const int nt = threads_for_flops(2.0 * P * K * Nout);
    int64_t chunk = (int64_t{1} << 18) / std::max<int64_t>(1, g.Cg * g.KH);
    chunk = std::max<int64_t>(8 * ki.mr, std::min<int64_t>(chunk, 4096));
    chunk = ceil_div(chunk, ki.mr) * ki.mr;
    const int64_t chunks = ceil_div(P, chunk);
    // Rows [pb, pe) x columns [j0, j1) on the calling thread.
    auto block = [&](int64_t pb, int64_t pe, int64_t j0, int64_t j1) {
      if (pb >= pe || j0 >= j1) return;
      PatchGeom gc = g;
      gc.p0 = g.p0 + pb;
      StridedMatrix xs{g.x + g.c0 + gc.p0 * g.C, g.C, false};
      const StridedMatrix wj{wmat + j0, ldw, true};
      const PackSource a = g.is_identity() ? strided_source(&xs) : patch_rows_source(&gc);
      sgemm_packed_sources(pe - pb, j1 - j0, K, 1.0f, a, strided_source(&wj), 0.0f,
                           out + pb * ldo + j0, ldo, GemmEpilogue{bias ? bias + j0 : nullptr, act},
                           1);
    };
    auto run = [&](int64_t c) { block(c * chunk, std::min(P, (c + 1) * chunk), 0, Nout); };
    if (nt <= 1) {
      for (int64_t c = 0; c < chunks; ++c) run(c);
    } else if (chunks >= 4 * nt) {
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
#endif
      for (int64_t c = 0; c < chunks; ++c) run(c);
    } else {
      // Too few chunks to balance: a static split of the rows (each thread
      // packs all of B) or of the columns (each packs all of A), whichever
      // repeats less packing. No barriers, unlike a GEMM threaded inside.
      const bool by_cols = Nout > P && Nout >= nt * ki.nr;
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
#endif
      {
#ifdef CNNX_HAVE_OPENMP
        const int t = omp_get_thread_num(), got = omp_get_num_threads();
#else
        const int t = 0, got = 1;
#endif
        if (by_cols) {
          const int64_t units = ceil_div(Nout, ki.nr);
          const int64_t j0 = std::min(Nout, units * t / got * ki.nr);
          const int64_t j1 = std::min(Nout, units * (t + 1) / got * ki.nr);
          for (int64_t pb = 0; pb < P; pb += chunk) block(pb, std::min(P, pb + chunk), j0, j1);
        } else {
          const int64_t units = ceil_div(P, ki.mr);
          const int64_t p0 = std::min(P, units * t / got * ki.mr);
          const int64_t p1 = std::min(P, units * (t + 1) / got * ki.mr);
          for (int64_t pb = p0; pb < p1; pb += chunk) block(pb, std::min(p1, pb + chunk), 0, Nout);
        }
      }
    }
    return;
  }
  const GemmKernelInfo ki = gemm_kernel_info();
  int nt = threads_for_flops(2.0 * P * K * Nout);
  int64_t chunk = ceil_div(ceil_div(P, nt), ki.nr) * ki.nr;
  chunk = std::max<int64_t>(ki.nr, std::min<int64_t>(chunk, 4096));
  const int64_t chunks = ceil_div(P, chunk);
  if (nt > chunks) nt = static_cast<int>(chunks);
  if (nt <= 1) {
    for (int64_t c = 0; c < chunks; ++c)
      transposed_chunk(g, c * chunk, std::min(P, (c + 1) * chunk), Nout, wmat, ldw, bias, act, out,
                       ldo);
    return;
  }
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel for num_threads(nt) schedule(static)
#endif
  for (int64_t c = 0; c < chunks; ++c)
    transposed_chunk(g, c * chunk, std::min(P, (c + 1) * chunk), Nout, wmat, ldw, bias, act, out,
                     ldo);
}

}  // namespace conv_detail
}  // namespace cnnx
