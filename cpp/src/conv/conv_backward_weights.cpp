// Backward-weights: dw[k, co] = sum over pixels p of patch[p, k] * dy[p, co],
// a GEMM whose depth is the whole batch's pixels. The patches are packed
// straight into the GEMM panels (rows k, depth pixels), never as an im2col
// matrix. When the depth is large and dw small (the usual case: the stem,
// LeNet layers) the depth is split across threads, each computing a partial
// dw in a thread-local buffer, then reduced; when dw itself is large and the
// depth short, one GEMM parallel over dw's tiles. With few output channels
// the product is computed transposed (dw^T = dy^T x patches) so that the
// micro-tile is not mostly empty.
#include <algorithm>
#include <cstring>
#include <vector>

#include "cnnx/threading.h"
#include "common/scratch.h"
#include "conv/conv_internal.h"

#ifdef CNNX_HAVE_OPENMP
#include <omp.h>
#endif

namespace cnnx {

using conv_detail::PatchGeom;

namespace {

struct Plan {
  const Conv2dShape* s;
  int64_t OH, OW, P, cig, cog, Kg;
  bool transposed;
  bool direct_kernel;  // conv_wgrad_direct (narrow layers on AVX2/AVX-512)
};

const float kZeros[64] = {};

// Partial product over pixels [p_begin, p_end) for group g into out:
// [Kg, cog] with row stride ldo, or (transposed) [cog, Kg] with stride Kg.
void group_product(const Plan& pl, const float* dy, const float* x, int64_t g, int64_t p_begin,
                   int64_t p_end, float* out, int64_t ldo, int threads) {
  const Conv2dShape& s = *pl.s;
  PatchGeom geom{x,         s.H,        s.W,    s.C_in,     g * pl.cig, pl.cig,       pl.OH,
                 pl.OW,     s.KH,       s.KW,   s.stride_h, s.stride_w, s.dilation_h, s.dilation_w,
                 s.pad_top, s.pad_left, p_begin};
  // (co, p) = dy[(p_begin + p)*C_out + g*cog + co]
  const StridedMatrix dym{dy + p_begin * s.C_out + g * pl.cog, s.C_out, true};
  const int64_t depth = p_end - p_begin;
  if (pl.direct_kernel) {
    const conv_detail::WgradKernel k = active_isa() == Isa::avx512
                                           ? conv_detail::wgrad_direct_kernel_avx512()
                                           : conv_detail::wgrad_direct_kernel_avx2();
    geom.p0 = 0;
    const conv_detail::WgradProblem pb{
        geom,       pl.cog,
        g * pl.cog, dy,
        s.C_out,    x + s.input_size(),
        kZeros,     s.dilation_w == 1 && pl.cig == s.C_in && s.KW > 1};
    float edge[64];
    std::fill(out, out + pl.cog * pl.Kg, 0.0f);
    k.fn(pb, p_begin, p_end, out, edge);
    return;
  }
  // 1x1 stride-1 unpadded: the patch matrix is the image itself.
  const StridedMatrix xm{x + p_begin * s.C_in + g * pl.cig, s.C_in, true};
  const PackSource patches =
      geom.is_identity() ? strided_source(&xm) : conv_detail::patch_cols_source(&geom);
  if (!pl.transposed) {
    sgemm_packed_sources(pl.Kg, pl.cog, depth, 1.0f, patches, conv_detail::strided_t_source(&dym),
                         0.0f, out, ldo, {}, threads);
  } else {
    sgemm_packed_sources(pl.cog, pl.Kg, depth, 1.0f, conv_detail::strided_t_source(&dym), patches,
                         0.0f, out, pl.Kg, {}, threads);
  }
}

// Rows [k0, k1) of the normal-form product over all pixels, on this thread.
struct RowOffset {
  PackSource inner;
  int64_t off;
};
void pack_row_offset(const void* ctx, int64_t r0, int64_t rows, int64_t k0, int64_t kc, int width,
                     float* dst) {
  const auto* o = static_cast<const RowOffset*>(ctx);
  o->inner.pack(o->inner.ctx, r0 + o->off, rows, k0, kc, width, dst);
}

void group_rows(const Plan& pl, const float* dy, const float* x, int64_t g, int64_t k0, int64_t k1,
                float* out, int64_t ldo) {
  const Conv2dShape& s = *pl.s;
  PatchGeom geom{x,         s.H,        s.W,  s.C_in,     g * pl.cig, pl.cig,       pl.OH,
                 pl.OW,     s.KH,       s.KW, s.stride_h, s.stride_w, s.dilation_h, s.dilation_w,
                 s.pad_top, s.pad_left, 0};
  const StridedMatrix dym{dy + g * pl.cog, s.C_out, true};
  const StridedMatrix xm{x + g * pl.cig, s.C_in, true};
  const RowOffset a{
      geom.is_identity() ? strided_source(&xm) : conv_detail::patch_cols_source(&geom), k0};
  sgemm_packed_sources(k1 - k0, pl.cog, pl.P, 1.0f, PackSource{pack_row_offset, &a},
                       conv_detail::strided_t_source(&dym), 0.0f, out + k0 * ldo, ldo, {}, 1);
}

void bias_grad(const float* dy, int64_t p_begin, int64_t p_end, int64_t C, float* db) {
  std::fill(db, db + C, 0.0f);
  for (int64_t p = p_begin; p < p_end; ++p) {
    const float* r = dy + p * C;
    for (int64_t c = 0; c < C; ++c) db[c] += r[c];
  }
}

// db = column sums of dy [P, C], threads over pixel ranges.
void bias_grad_threaded(const float* dy, int64_t P, int64_t C, float* db) {
  const int nt = threads_for_flops(static_cast<double>(P) * C * 8);
  if (nt <= 1) {
    bias_grad(dy, 0, P, C, db);
    return;
  }
  std::vector<float> parts(static_cast<size_t>(nt * C), 0.0f);
  int used = 1;
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num(), got = omp_get_num_threads();
    if (t == 0) used = got;
    bias_grad(dy, P * t / got, P * (t + 1) / got, C, parts.data() + t * C);
  }
#else
  bias_grad(dy, 0, P, C, parts.data());
#endif
  for (int64_t c = 0; c < C; ++c) {
    float v = 0.0f;
    for (int u = 0; u < used; ++u) v += parts[u * C + c];
    db[c] = v;
  }
}

}  // namespace

void conv2d_backward_weights(const Conv2dShape& s, const float* dy, const float* x, float* dw,
                             float* db) {
  conv_detail::check_or_throw(s);
  if (s.is_depthwise()) {
    conv_detail::depthwise_backward_weights(s, dy, x, dw, db);
    return;
  }
  if (s.N * s.out_h() * s.out_w() > 0 && conv_detail::winograd_wgrad_preferred(s) &&
      conv_detail::winograd_wgrad(s, dy, x, dw)) {
    if (db) bias_grad_threaded(dy, s.N * s.out_h() * s.out_w(), s.C_out, db);
    return;
  }
  if (s.N * s.out_h() * s.out_w() > 0 && conv_detail::wgrad_planar_preferred(s)) {
    conv_detail::wgrad_planar_avx512(s, dy, x, dw, db);
    return;
  }
  Plan pl{&s, s.out_h(), s.out_w(), 0, s.cin_per_group(), s.cout_per_group(), 0, false, false};
  pl.P = s.N * pl.OH * pl.OW;
  pl.Kg = s.KH * s.KW * pl.cig;
  // The transposed product packs the patches as B panels nr wide (long
  // contiguous runs per pixel, packed once per depth block) instead of mr-row
  // A panels: prefer it unless it wastes clearly more of the micro-tile.
  // (Measured: a win for K >= 256 with a long depth; not for short depths,
  // where dw is big and the normal form's threading over it is better.)
  const double eff_t = conv_detail::tile_efficiency(pl.cog, pl.Kg);
  const double eff_n = conv_detail::tile_efficiency(pl.Kg, pl.cog);
  pl.transposed =
      eff_t > 1.25 * eff_n || (eff_t >= 0.8 * eff_n && pl.Kg >= 128 && pl.P >= 4 * pl.Kg);
  pl.direct_kernel = active_isa() >= Isa::avx2 && conv_detail::igemm_available() && pl.cog < 32;
  if (pl.direct_kernel) pl.transposed = true;  // it produces dw^T
  const int64_t wsize = s.weight_size();
  if (pl.P == 0) {
    std::fill(dw, dw + wsize, 0.0f);
    if (db) std::fill(db, db + s.C_out, 0.0f);
    return;
  }
  const GemmKernelInfo ki = gemm_kernel_info();
  int nt = threads_for_flops(2.0 * pl.P * pl.Kg * s.C_out);
  const int64_t tiles = conv_detail::ceil_div(pl.Kg, ki.mr) * conv_detail::ceil_div(pl.cog, ki.nr);
  if (pl.direct_kernel && pl.P < 64 * nt) nt = 1;  // single-threaded kernel: split or nothing
  const bool direct =
      nt == 1 || (!pl.direct_kernel && ((pl.P < 4 * pl.Kg && tiles >= 4 * nt) || pl.P < 64 * nt));

  // Scatter a group's result (layout as in group_product) into dw, adding.
  auto put = [&](const float* src, int64_t g, int64_t k_begin, int64_t k_end, bool add) {
    for (int64_t k = k_begin; k < k_end; ++k) {
      float* d = dw + k * s.C_out + g * pl.cog;
      if (!pl.transposed) {
        const float* r = src + k * pl.cog;
        if (add)
          for (int64_t c = 0; c < pl.cog; ++c) d[c] += r[c];
        else
          for (int64_t c = 0; c < pl.cog; ++c) d[c] = r[c];
      } else {
        const float* r = src + k;
        if (add)
          for (int64_t c = 0; c < pl.cog; ++c) d[c] += r[c * pl.Kg];
        else
          for (int64_t c = 0; c < pl.cog; ++c) d[c] = r[c * pl.Kg];
      }
    }
  };

  if (direct) {
    const int threads = nt == 1 ? 1 : 0;
    for (int64_t g = 0; g < s.groups; ++g) {
      if (!pl.transposed && threads == 0 && !pl.direct_kernel) {
        // dw is big, the depth short: threads take static slices of dw's
        // rows, each a single-threaded GEMM (no barriers; only the small dy
        // operand is packed twice).
        const GemmKernelInfo kin = gemm_kernel_info();
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
#endif
        {
#ifdef CNNX_HAVE_OPENMP
          const int t = omp_get_thread_num(), got = omp_get_num_threads();
#else
          const int t = 0, got = 1;
#endif
          const int64_t units = conv_detail::ceil_div(pl.Kg, kin.mr);
          const int64_t k0 = std::min(pl.Kg, units * t / got * kin.mr);
          const int64_t k1 = std::min(pl.Kg, units * (t + 1) / got * kin.mr);
          if (k0 < k1) group_rows(pl, dy, x, g, k0, k1, dw + g * pl.cog, s.C_out);
        }
      } else if (!pl.transposed) {
        group_product(pl, dy, x, g, 0, pl.P, dw + g * pl.cog, s.C_out, threads);
      } else {
        float* t = thread_scratch(ScratchSlot::conv_1, static_cast<size_t>(pl.Kg * pl.cog));
        group_product(pl, dy, x, g, 0, pl.P, t, pl.Kg, threads);
        put(t, g, 0, pl.Kg, false);
      }
    }
    if (db) bias_grad(dy, 0, pl.P, s.C_out, db);
    return;
  }

  // Depth split: thread t reduces pixels [P*t/nt, P*(t+1)/nt) into its own buffer.
  std::vector<float*> bufs(nt, nullptr);
  std::vector<float> dbs(db ? static_cast<size_t>(nt * s.C_out) : 0);
  const int64_t gsz = pl.Kg * pl.cog;
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
#endif
  {
#ifdef CNNX_HAVE_OPENMP
    const int t = omp_get_thread_num(), got = omp_get_num_threads();
#else
    const int t = 0, got = 1;
#endif
    // A nested call may get fewer threads than asked: the first `got` share all.
    const int64_t pb = pl.P * t / got, pe = pl.P * (t + 1) / got;
    float* buf = thread_scratch(ScratchSlot::conv_1, static_cast<size_t>(wsize));
    bufs[t] = buf;
    for (int64_t g = 0; g < s.groups; ++g)
      group_product(pl, dy, x, g, pb, pe, buf + g * gsz, pl.cog, 1);
    if (db) bias_grad(dy, pb, pe, s.C_out, dbs.data() + t * s.C_out);
#ifdef CNNX_HAVE_OPENMP
#pragma omp barrier
#endif
    // Reduce: thread t owns rows [Kg*t/got, Kg*(t+1)/got) of every group.
    const int64_t kb = pl.Kg * t / got, ke = pl.Kg * (t + 1) / got;
    for (int u = 0; u < got; ++u)
      for (int64_t g = 0; g < s.groups; ++g) put(bufs[u] + g * gsz, g, kb, ke, u > 0);
    if (db && t == 0) {
      for (int64_t c = 0; c < s.C_out; ++c) {
        float v = 0.0f;
        for (int u = 0; u < got; ++u) v += dbs[u * s.C_out + c];
        db[c] = v;
      }
    }
  }
}

}  // namespace cnnx
