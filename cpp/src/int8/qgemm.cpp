// The int8 GEMM driver. B is packed once per layer (qgemm_pack.cpp), so a
// call only prepares A and runs the micro-kernel over a 2-D grid of threads:
//
//   ic: this thread's rows in blocks of mc  (A rows: pointers into the
//                                            matrix or image, or a staged
//                                            copy, in L2)
//    p: this thread's NR-wide B panels      (full depth K, packed at load)
//     ir: MR rows                            (micro-kernel, full K, store;
//                                            an m-row kernel on the last)
//
// There is no K blocking: the micro-kernel runs the whole depth and applies
// the store, so no int32 partial sums ever leave the registers. Threads
// split M and N, never K, so results do not depend on the thread count.
#include <algorithm>
#include <cstdint>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "cnnx/threading.h"
#include "common/scratch.h"
#include "int8/qgemm_driver.h"

#ifdef CNNX_HAVE_OPENMP
#include <omp.h>
#endif

namespace cnnx {
namespace qdetail {
namespace {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Staged A rows: a multiple of 64 bytes, but not of 4096 (rows one page
// apart would share L1 sets).
int64_t staged_ld(int64_t k_pad) {
  int64_t ld = (k_pad + 63) / 64 * 64;
  if (ld % 4096 == 0) ld += 64;
  return ld;
}

// Bytes of A block (mc rows) kept per thread: about a quarter of a Zen 4 /
// Skylake L2, leaving room for the B panels streaming through.
constexpr int64_t kABlockBytes = 256 * 1024;

void split_range(int64_t total, int64_t unit, int parts, int p, int64_t* b, int64_t* e) {
  const int64_t units = ceil_div(total, unit);
  const int64_t per = units / parts, extra = units % parts;
  const int64_t ub = p * per + std::min<int64_t>(p, extra);
  const int64_t ue = ub + per + (p < extra ? 1 : 0);
  *b = std::min(total, ub * unit);
  *e = std::min(total, ue * unit);
}

// tm x tn threads over (M in MR rows) x (N in NR panels): balance first,
// then prefer splitting M (threads then stage disjoint A rows; B is shared
// read-only).
void thread_grid(int nt, int64_t m_units, int64_t n_units, int* tm, int* tn) {
  double best = -1.0;
  *tm = nt;
  *tn = 1;
  for (int a = nt; a >= 1; --a) {
    if (nt % a) continue;
    const int b = nt / a;
    const double rows = std::ceil(static_cast<double>(m_units) / a);
    const double cols = std::ceil(static_cast<double>(n_units) / b);
    const double used = static_cast<double>(m_units) * n_units / (rows * cols * nt);
    if (used > best + 1e-9) {  // on a tie the larger tm (tried first) stays
      best = used;
      *tm = a;
      *tn = b;
    }
  }
}

bool bad_zero_point(int32_t z) { return z < 0 || z > 255; }

}  // namespace

void check_layout(const QPackedWeights& w) {
  if (w.empty()) throw std::invalid_argument("w: the packed weights are empty");
  const auto& P = w.impl();
  if (P.depthwise) return;  // ISA-independent layout
  const QGemmConfig& now = qgemm_config();
  if (P.family != &now)
    throw std::invalid_argument(std::string("w: packed for the int8 kernel ") + P.family->name +
                                ", but " + now.name + " is active: pack the weights again");
}

StorePrep prepare_store(const QEpilogue& ep, const QPackedWeights::Impl& w, bool with_zcomp) {
  if (!(std::isfinite(ep.x.scale) && ep.x.scale > 0.0f))
    throw std::invalid_argument("x_scale: expected a finite scale > 0, got " +
                                std::to_string(ep.x.scale));
  if (bad_zero_point(ep.x.zero_point))
    throw std::invalid_argument("x_zero_point: expected 0..255, got " +
                                std::to_string(ep.x.zero_point));
  const bool u8 = ep.out == QOutput::u8;
  if (u8) {
    if (!(std::isfinite(ep.y.scale) && ep.y.scale > 0.0f))
      throw std::invalid_argument("y_scale: expected a finite scale > 0, got " +
                                  std::to_string(ep.y.scale));
    if (bad_zero_point(ep.y.zero_point))
      throw std::invalid_argument("y_zero_point: expected 0..255, got " +
                                  std::to_string(ep.y.zero_point));
  }
  if (ep.out != QOutput::f32 && ep.out != QOutput::u8 && ep.out != QOutput::s32)
    throw std::invalid_argument("out: unknown output kind");
  if (ep.act != QActivation::none && ep.act != QActivation::relu && ep.act != QActivation::relu6)
    throw std::invalid_argument("activation: unknown activation");

  StorePrep s;
  const int64_t N = w.N;
  s.out = ep.out;
  s.za = ep.x.zero_point;
  s.zcomp.assign(N, 0);
  s.mult.resize(N);
  s.offs.resize(N);
  for (int64_t c = 0; c < N; ++c) {
    // acc - zcomp: the zero point's share, and an int32 bias added exactly
    const int64_t z = (with_zcomp ? int64_t{ep.x.zero_point} * w.colsum[c] : 0) -
                      (ep.bias_acc ? int64_t{ep.bias_acc[c]} : 0);
    if (ep.bias_acc && (z < INT32_MIN || z > INT32_MAX))
      throw std::invalid_argument(
          "bias_acc: x_zero_point * column sum - bias overflows int32 "
          "at channel " +
          std::to_string(c));
    s.zcomp[c] = static_cast<int32_t>(z);
    float m = ep.x.scale * w.scale[c];
    float o = ep.bias ? ep.bias[c] : 0.0f;
    if (ep.bias && !std::isfinite(o))
      throw std::invalid_argument("bias: expected finite values, got " + std::to_string(o) +
                                  " at channel " + std::to_string(c));
    if (u8) {
      m = m / ep.y.scale;
      o = o / ep.y.scale;
    }
    if (!std::isfinite(m) || !std::isfinite(o))
      throw std::invalid_argument("scale: x_scale * w_scale" + std::string(u8 ? " / y_scale" : "") +
                                  " or the bias in output units overflows float32 at channel " +
                                  std::to_string(c));
    s.mult[c] = m;
    s.offs[c] = o;
  }
  const float inf = INFINITY;
  if (u8) {
    s.zy = ep.y.zero_point;
    int32_t lo_q = 0, hi_q = 255;
    if (ep.act != QActivation::none) lo_q = s.zy;
    if (ep.act == QActivation::relu6) {
      const float six = 6.0f / ep.y.scale;
      const int32_t six_q = six >= 255.0f ? 255 : static_cast<int32_t>(std::nearbyint(six));
      hi_q = std::min(255, s.zy + six_q);
    }
    s.lo = static_cast<float>(lo_q - s.zy);
    s.hi = static_cast<float>(hi_q - s.zy);
  } else {
    s.lo = ep.act == QActivation::none ? -inf : 0.0f;
    s.hi = ep.act == QActivation::relu6 ? 6.0f : inf;
  }
  return s;
}

void qgemm_run(int64_t M, const ASource& src, const QPackedWeights::Impl& w, int64_t group,
               const StorePrep& st, void* c, int64_t ldc, int threads) {
  if (M <= 0) return;
  const QGemmConfig& g = *w.config;
  const int64_t K = w.K, K_pad = w.K_pad, n_group = w.n_group;
  const int eb = g.elem_bytes;
  const int64_t ld8 = staged_ld(K_pad);  // staged uint8 rows (bytes)
  const int64_t lda_staged = ld8 * eb;   // staged rows as the kernel reads them (bytes)
  enum class Mode { staged, direct, indirect };
  Mode mode = Mode::staged;
  if (eb == 1 && src.pointers && src.seg_bytes % 4 == 0 && src.nseg * src.seg_bytes == K_pad)
    mode = Mode::indirect;
  else if (eb == 1 && src.direct && K % 4 == 0)
    mode = Mode::direct;
  const int nseg = mode == Mode::indirect ? src.nseg : 1;
  const int64_t seg_steps =
      mode == Mode::indirect ? src.seg_bytes / 4 : K_pad / qgemm_k_per_step(g);
  const size_t ob = out_elem_bytes(st.out);
  const int64_t col0 = group * n_group;

  const double ops = 2.0 * M * n_group * K;
  int nt = threads > 0 ? std::min(threads, get_num_threads()) : threads_for_flops(ops / 4.0);
#ifndef CNNX_HAVE_OPENMP
  nt = 1;
#endif
  const int64_t m_units = ceil_div(M, g.mr);
  nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(nt, m_units * w.panels)));
  int tm, tn;
  thread_grid(nt, m_units, w.panels, &tm, &tn);
  const int64_t mc_max =
      std::max<int64_t>(g.mr, std::min<int64_t>(512, kABlockBytes / lda_staged) / g.mr * g.mr);

  auto body = [&](int tid, int nthreads) {
    const int ti = nthreads == 1 ? 0 : tid / tn;
    const int tj = nthreads == 1 ? 0 : tid % tn;
    int64_t m_begin, m_end, p_begin, p_end;
    split_range(M, g.mr, nthreads == 1 ? 1 : tm, ti, &m_begin, &m_end);
    split_range(w.panels, 1, nthreads == 1 ? 1 : tn, tj, &p_begin, &p_end);
    if (m_begin >= m_end || p_begin >= p_end) return;
    const int64_t mc = std::min<int64_t>(mc_max, ceil_div(m_end - m_begin, g.mr) * g.mr);
    // Staging: mc + 1 rows of ld8 bytes (room for the indirect mode's
    // border segments too), then a zero row; the int16 copy for eb == 2.
    const int64_t stage_bytes = (mc + 2) * ld8 + 64;
    uint8_t* buf8 = reinterpret_cast<uint8_t*>(
        thread_scratch(ScratchSlot::gemm_a, static_cast<size_t>(stage_bytes / 4 + 16)));
    uint8_t* zero_row = buf8 + (mc + 1) * ld8;
    std::memset(zero_row, 0, static_cast<size_t>(ld8));
    int16_t* buf16 = nullptr;
    if (eb == 2)
      buf16 = reinterpret_cast<int16_t*>(
          thread_scratch(ScratchSlot::gemm_b, static_cast<size_t>(mc * ld8 / 2 + 16)));
    const uint8_t** ptrs = reinterpret_cast<const uint8_t**>(thread_scratch(
        ScratchSlot::conv_0, static_cast<size_t>(ceil_div(mc, g.mr) * g.mr * nseg * 2 + 16)));

    // Stage rows [r0, r0 + rows) into buffer rows 0..rows-1 (zero-padded to
    // K_pad) and point the tiles at them.
    auto stage = [&](int64_t r0, int64_t rows) {
      src.fill(src.ctx, r0, rows, buf8, ld8);
      const uint8_t* base = buf8;
      if (eb == 2) {
        for (int64_t i = 0; i < rows; ++i) {
          const uint8_t* s8 = buf8 + i * ld8;
          int16_t* s16 = buf16 + i * ld8;
          for (int64_t k = 0; k < K_pad; ++k) s16[k] = s8[k];
        }
        base = reinterpret_cast<const uint8_t*>(buf16);
      }
      const int64_t padded = ceil_div(rows, g.mr) * g.mr;
      for (int64_t i = 0; i < padded; ++i) ptrs[i] = i < rows ? base + i * lda_staged : zero_row;
    };

    for (int64_t ic = m_begin; ic < m_end; ic += mc) {
      const int64_t rows = std::min<int64_t>(mc, m_end - ic);
      if (mode == Mode::indirect) {
        src.pointers(src.ctx, ic, rows, g.mr, ptrs, buf8);
      } else if (mode == Mode::direct) {
        const int64_t padded = ceil_div(rows, g.mr) * g.mr;
        for (int64_t i = 0; i < padded; ++i)
          ptrs[i] = i < rows ? src.direct + (ic + i) * src.direct_ld : zero_row;
      } else {
        stage(ic, rows);
      }
      for (int64_t p = p_begin; p < p_end; ++p) {
        const int64_t j = p * g.nr;
        const int n = static_cast<int>(std::min<int64_t>(g.nr, n_group - j));
        const QStoreArgs args = store_args_at(st, col0 + j);
        const uint8_t* bp = w.data.get() + (group * w.panels + p) * w.panel_bytes;
        for (int64_t ir = 0; ir < rows; ir += g.mr) {
          const int m = static_cast<int>(std::min<int64_t>(g.mr, rows - ir));
          void* ct = static_cast<uint8_t*>(c) + ((ic + ir) * ldc + col0 + j) * ob;
          const QGemmUkernel kernel = (m < g.mr && g.rows) ? g.rows[m - 1] : g.ukernel;
          kernel(seg_steps, nseg, ptrs + ir * nseg, g.mr, bp, ct, ldc, m, n, args);
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
    if (got == tm * tn)
      body(omp_get_thread_num(), got);
    else if (omp_get_thread_num() == 0)
      body(0, 1);
  }
#endif
}

}  // namespace qdetail

namespace {

struct MatrixA {
  const uint8_t* a;
  int64_t lda, K, K_pad;
};

void fill_matrix_rows(const void* ctx, int64_t r0, int64_t rows, uint8_t* dst, int64_t ld) {
  const auto& m = *static_cast<const MatrixA*>(ctx);
  for (int64_t i = 0; i < rows; ++i) {
    std::memcpy(dst + i * ld, m.a + (r0 + i) * m.lda, m.K);
    for (int64_t k = m.K; k < m.K_pad; ++k) dst[i * ld + k] = 0;
  }
}

}  // namespace

void qgemm(int64_t M, const uint8_t* a, int64_t lda, const QPackedWeights& b, const QEpilogue& ep,
           void* c, int64_t ldc, int threads) {
  qdetail::check_layout(b);
  const auto& P = b.impl();
  if (P.groups != 1 || P.depthwise || P.KH != 1 || P.KW != 1 || P.C_in != 0)
    throw std::invalid_argument("b: packed for a convolution, not a matrix product");
  if (M < 0) throw std::invalid_argument("a: expected M >= 0 rows");
  if (lda < P.K) throw std::invalid_argument("a: row stride smaller than K");
  if (ldc < P.N) throw std::invalid_argument("c: row stride smaller than N");
  const qdetail::StorePrep st = qdetail::prepare_store(ep, P, true);
  const MatrixA ctx{a, lda, P.K, P.K_pad};
  qdetail::ASource src{fill_matrix_rows, &ctx, a, lda};
  qdetail::qgemm_run(M, src, P, 0, st, c, ldc, threads);
}

}  // namespace cnnx
