// Backward-weights for layers with very few input channels and at least 16
// output channels (RGB stems), AVX-512:
//
//   dw[k][co] = sum over output pixels p of patch[p][k] * dy[p][co]
//
// vectorised over co (a dy row is NV vectors), one patch value broadcast per
// k. Each thread copies the image it works on into a zero-padded NHWC buffer
// (Cg <= 4 channels: small), so that patch[p][k] is xpad[base(p) + off(k)]
// with no bounds checks. A register tile is KB values of k x NV vectors of
// co; threads take ranges of output rows, each summing into its own partial
// dw, reduced at the end. db comes from the same pass.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "cnnx/threading.h"
#include "common/scratch.h"
#include "common/vec_avx512.h"
#include "conv/conv_internal.h"

#ifdef CNNX_HAVE_OPENMP
#include <omp.h>
#endif

namespace cnnx {
namespace conv_detail {

namespace {

struct WgradPlanar {
  const Conv2dShape* s;
  int64_t OH, OW, cig, cog, Kg, Hp, Wp;
  int64_t g;  // group
  const float* dy;
  const float* x;
};

void fill_padded(const WgradPlanar& d, int64_t n, float* xp) {
  const Conv2dShape& s = *d.s;
  std::memset(xp, 0, sizeof(float) * d.Hp * d.Wp * d.cig);
  for (int64_t ih = std::max<int64_t>(0, -s.pad_top); ih < s.H && ih + s.pad_top < d.Hp; ++ih) {
    const float* src = d.x + ((n * s.H + ih) * s.W) * s.C_in + d.g * d.cig;
    float* dst = xp + (ih + s.pad_top) * d.Wp * d.cig;
    const int64_t iw0 = std::max<int64_t>(0, -s.pad_left);
    const int64_t iw1 = std::min<int64_t>(s.W, d.Wp - s.pad_left);
    if (iw1 <= iw0) continue;
    if (d.cig == s.C_in) {  // one group: the row is contiguous
      std::memcpy(dst + (iw0 + s.pad_left) * d.cig, src + iw0 * s.C_in,
                  sizeof(float) * (iw1 - iw0) * d.cig);
      continue;
    }
    for (int64_t iw = iw0; iw < iw1; ++iw)
      for (int64_t c = 0; c < d.cig; ++c) dst[(iw + s.pad_left) * d.cig + c] = src[iw * s.C_in + c];
  }
}

// 8 lanes with AVX-512VL masks, for layers of at most 8 output channels
// (LeNet conv1's 3 -> 8): a half-empty 16-lane vector would waste half the FMAs.
struct Ymm8 {
  static constexpr int W = 8;
  using reg = __m256;
  using tail = __mmask8;
  static inline tail tail_mask(int64_t n) {
    return n >= 8 ? static_cast<tail>(0xFF) : n > 0 ? static_cast<tail>((1u << n) - 1u) : 0;
  }
  static inline reg zero() { return _mm256_setzero_ps(); }
  static inline reg set1(float v) { return _mm256_set1_ps(v); }
  static inline reg load(const float* p) { return _mm256_loadu_ps(p); }
  static inline void store(float* p, reg v) { _mm256_storeu_ps(p, v); }
  static inline reg load_tail(const float* p, tail m) { return _mm256_maskz_loadu_ps(m, p); }
  static inline void store_tail(float* p, tail m, reg v) { _mm256_mask_storeu_ps(p, m, v); }
  static inline reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static inline reg fmadd(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
};
using Zmm16 = vec_avx512::V;
// acc over output rows [r0, r1) (global: n*OH + oh) into part [Kg][cog] and dbp,
// in vectors of V::W lanes (16, or 8 for at most 8 output channels).
template <typename V, int NV, int KB>
void rows(const WgradPlanar& d, int64_t r0, int64_t r1, float* part, float* dbp, float* xp) {
  const Conv2dShape& s = *d.s;
  const int64_t cog = d.cog;
  const typename V::tail lm = V::tail_mask(cog - (NV - 1) * V::W);  // lanes of the last vector
  // Runs of contiguous patch values: one filter row (all kw taps) when the
  // taps are adjacent, else one tap; k = seg * seg_len + j.
  const bool merge = s.dilation_w == 1;
  const int64_t seg_len = merge ? s.KW * d.cig : d.cig;
  const int64_t nseg = merge ? s.KH : s.KH * s.KW;
  const float* dyg = d.dy + d.g * cog;
  // Rows in chunks whose dy stays in L2 across the k blocks; the image is
  // copied once per image.
  const int64_t CH = std::max<int64_t>(1, 2048 / d.OW);
  int64_t r = r0;
  while (r < r1) {
    const int64_t n = r / d.OH;
    const int64_t rend = std::min(r1, (n + 1) * d.OH);
    fill_padded(d, n, xp);
    for (int64_t c0 = r; c0 < rend; c0 += CH) {
      const int64_t c1 = std::min(rend, c0 + CH);
      for (int64_t sg = 0; sg < nseg; ++sg) {
        const int64_t kh = merge ? sg : sg / s.KW, kw = merge ? 0 : sg % s.KW;
        const int64_t soff = (kh * s.dilation_h * d.Wp + kw * s.dilation_w) * d.cig;
        for (int64_t j0 = 0; j0 < seg_len; j0 += KB) {
          const int kb = static_cast<int>(std::min<int64_t>(KB, seg_len - j0));
          const bool first = sg == 0 && j0 == 0;
          typename V::reg acc[KB][NV], dba[NV];
#pragma GCC unroll 32
          for (int b = 0; b < KB; ++b)
#pragma GCC unroll 4
            for (int j = 0; j < NV; ++j) acc[b][j] = V::zero();
#pragma GCC unroll 4
          for (int j = 0; j < NV; ++j) dba[j] = V::zero();
          for (int64_t rr = c0; rr < c1; ++rr) {
            const int64_t oh = rr % d.OH;
            // Values past the run (b >= kb) are read but not used: xp has KB
            // floats of slack at its end.
            const float* xrow = xp + oh * s.stride_h * d.Wp * d.cig + soff + j0;
            const float* dyp = dyg + rr * d.OW * s.C_out;
            const int64_t xstep = s.stride_w * d.cig;
            for (int64_t ow = 0; ow < d.OW; ++ow, xrow += xstep, dyp += s.C_out) {
              typename V::reg v[NV];
#pragma GCC unroll 4
              for (int j = 0; j < NV - 1; ++j) v[j] = V::load(dyp + V::W * j);
              v[NV - 1] = V::load_tail(dyp + V::W * (NV - 1), lm);
#pragma GCC unroll 32
              for (int b = 0; b < KB; ++b) {
                const typename V::reg xb = V::set1(xrow[b]);
#pragma GCC unroll 4
                for (int j = 0; j < NV; ++j) acc[b][j] = V::fmadd(xb, v[j], acc[b][j]);
              }
              if (first) {
#pragma GCC unroll 4
                for (int j = 0; j < NV; ++j) dba[j] = V::add(dba[j], v[j]);
              }
            }
          }
          // Constant indices only (a runtime index would keep acc in memory).
#pragma GCC unroll 32
          for (int b = 0; b < KB; ++b) {
            if (b >= kb) break;
            float* dst = part + (sg * seg_len + j0 + b) * cog;
#pragma GCC unroll 4
            for (int j = 0; j < NV - 1; ++j)
              V::store(dst + V::W * j, V::add(V::load(dst + V::W * j), acc[b][j]));
            float* dl = dst + V::W * (NV - 1);
            V::store_tail(dl, lm, V::add(V::load_tail(dl, lm), acc[b][NV - 1]));
          }
          if (first) {
#pragma GCC unroll 4
            for (int j = 0; j < NV - 1; ++j)
              V::store(dbp + V::W * j, V::add(V::load(dbp + V::W * j), dba[j]));
            float* dl = dbp + V::W * (NV - 1);
            V::store_tail(dl, lm, V::add(V::load_tail(dl, lm), dba[NV - 1]));
          }
        }
      }
    }
    r = rend;
  }
}

using RowsFn = void (*)(const WgradPlanar&, int64_t, int64_t, float*, float*, float*);

RowsFn rows_fn(int64_t cog) {
  if (cog <= 8) return rows<Ymm8, 1, 16>;
  switch (ceil_div(cog, 16)) {
    case 1: return rows<Zmm16, 1, 16>;
    case 2: return rows<Zmm16, 2, 10>;
    case 3: return rows<Zmm16, 3, 7>;
    default: return rows<Zmm16, 4, 5>;
  }
}

}  // namespace

bool wgrad_planar_preferred(const Conv2dShape& s) {
  if (active_isa() != Isa::avx512 || !igemm_available() || s.is_depthwise()) return false;
  const int64_t cig = s.cin_per_group(), cog = s.cout_per_group();
  // 8 output channels: 8-lane vectors (LeNet conv1's 3 -> 8).
  return cig <= 16 && (cog == 8 || (cog >= 16 && cog <= 64)) && s.out_w() >= 4;
}

void wgrad_planar_avx512(const Conv2dShape& s, const float* dy, const float* x, float* dw,
                         float* db) {
  WgradPlanar d{&s, s.out_h(), s.out_w(), s.cin_per_group(), s.cout_per_group(), 0, 0, 0, 0, dy, x};
  d.Kg = s.KH * s.KW * d.cig;
  // Padded extent actually read (the filter may stop short of the bottom/right pads).
  d.Hp = (d.OH - 1) * s.stride_h + (s.KH - 1) * s.dilation_h + 1;
  d.Wp = (d.OW - 1) * s.stride_w + (s.KW - 1) * s.dilation_w + 1;
  const int64_t R = s.N * d.OH;
  const int64_t gsz = d.Kg * d.cog;
  const RowsFn fn = rows_fn(d.cog);
  const int64_t P = R * d.OW;
  int nt = threads_for_flops(2.0 * P * d.Kg * s.C_out);
  if (R < 2 * nt) nt = 1;
  std::fill(dw, dw + s.weight_size(), 0.0f);
  if (db) std::fill(db, db + s.C_out, 0.0f);
  const size_t xsize = static_cast<size_t>(d.Hp * d.Wp * d.cig + 32);  // + slack (KB <= 24)
  const size_t psize = static_cast<size_t>(gsz + d.cog);
  std::vector<float*> parts(nt, nullptr);
  for (int64_t g = 0; g < s.groups; ++g) {
    d.g = g;
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
#ifdef CNNX_HAVE_OPENMP
      const int t = omp_get_thread_num(), got = omp_get_num_threads();
#else
      const int t = 0, got = 1;
#endif
      float* part = thread_scratch(ScratchSlot::conv_1, psize);
      std::fill(part, part + psize, 0.0f);
      parts[t] = part;
      float* xp = thread_scratch(ScratchSlot::conv_0, xsize);
      fn(d, R * t / got, R * (t + 1) / got, part, part + gsz, xp);
#ifdef CNNX_HAVE_OPENMP
#pragma omp barrier
#endif
      // Thread t sums rows [Kg*t/got, Kg*(t+1)/got) (and db on thread 0).
      const int64_t kb = d.Kg * t / got, ke = d.Kg * (t + 1) / got;
      for (int u = 0; u < got; ++u) {
        for (int64_t k = kb; k < ke; ++k) {
          float* dst = dw + k * s.C_out + g * d.cog;
          const float* src = parts[u] + k * d.cog;
          for (int64_t c = 0; c < d.cog; ++c) dst[c] += src[c];
        }
        if (db && t == 0)
          for (int64_t c = 0; c < d.cog; ++c) db[g * d.cog + c] += parts[u][gsz + c];
      }
    }
  }
}

}  // namespace conv_detail
}  // namespace cnnx
