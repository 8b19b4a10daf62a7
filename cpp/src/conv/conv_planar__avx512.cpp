// Direct convolution vectorised over output pixels, for layers with very few
// input channels (RGB stems, LeNet's first layer), AVX-512.
//
// With 3 input channels a patch row is only 3*KW values: the channel-vector
// kernels (igemm) spend a good share of their time setting up pointers and
// broadcasting single values. Here each thread copies one image into a
// zero-padded planar buffer xp[ci][row][phase][col] (a column c of the
// padded image lives in phase c % sw at index c / sw), so that 16
// consecutive output pixels of a row read 16 consecutive floats for every
// tap (kh, kw, ci), whatever the stride. A register tile is NP vectors of 16
// pixels x 8 output channels (weights broadcast), transposed to NHWC with a
// pair of 8x8 register transposes in the epilogue.
#include <immintrin.h>

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
namespace conv_detail {

namespace {

constexpr int CO = 8;  // output channels per register tile

struct Planar {
  const PatchGeom* g;
  int64_t RH, S, L;      // padded rows, phases (= sw), floats per phase row
  const float* wp;       // [ncb][KH][KW][Cg][CO]
  const int64_t* kwoff;  // per kw: offset of its phase row and column in xp
  int64_t Nout;
  const float* bias;
  Activation act;
  float* out;
  int64_t ldo;
};

// Copy image n into xp (zero padding).
void fill_planar(const Planar& pl, int64_t n, float* xp) {
  const PatchGeom& g = *pl.g;
  const int64_t Cg = g.Cg, plane = pl.RH * pl.S * pl.L;
  std::memset(xp, 0, sizeof(float) * Cg * plane);
  const float* img = g.x + n * g.H * g.W * g.C + g.c0;
  const int64_t cols = pl.S * pl.L;  // padded columns covered
  const int64_t iw_lo = std::max<int64_t>(0, -g.pl), iw_hi = std::min<int64_t>(g.W, cols - g.pl);
  for (int64_t r = 0; r < pl.RH; ++r) {
    const int64_t ih = r - g.pt;
    if (ih < 0 || ih >= g.H) continue;
    const float* src = img + ih * g.W * g.C;
    for (int64_t iw = iw_lo; iw < iw_hi; ++iw) {
      const int64_t c = iw + g.pl;
      float* d = xp + (r * pl.S + c % pl.S) * pl.L + c / pl.S;
      const float* s = src + iw * g.C;
      for (int64_t ci = 0; ci < Cg; ++ci) d[ci * plane] = s[ci];
    }
  }
}

// Output row oh of image n, pixels [ow0, ow0 + 16*NP) (clipped to OW),
// channel block cb.
// RM (rows mode, OW <= 16): vector v is output row oh + v instead of the
// pixels [ow0 + 16v, ...) of row oh.
// CG: the input channels when known at compile time (1..4: the channel
// loop unrolls), else 0.
template <int NP, bool RM, int CG>
inline void tile(const Planar& pl, const float* xp, int64_t n, int64_t oh, int64_t ow0,
                 int64_t cb) {
  const PatchGeom& g = *pl.g;
  const int64_t Cg = CG ? CG : g.Cg, plane = pl.RH * pl.S * pl.L;
  const int64_t vin = RM ? g.sh * pl.S * pl.L : 16;  // floats between the vectors' inputs
  __m512 acc[NP][CO];
#pragma GCC unroll 4
  for (int v = 0; v < NP; ++v)
#pragma GCC unroll 8
    for (int c = 0; c < CO; ++c) acc[v][c] = _mm512_setzero_ps();
  const float* w = pl.wp + cb * g.KH * g.KW * Cg * CO;
  for (int64_t kh = 0; kh < g.KH; ++kh) {
    const int64_t r = oh * g.sh + kh * g.dh;
    const float* xrow = xp + r * pl.S * pl.L + ow0;
    for (int64_t kw = 0; kw < g.KW; ++kw) {
      const float* xr = xrow + pl.kwoff[kw];
#pragma GCC unroll 4
      for (int64_t ci = 0; ci < Cg; ++ci, w += CO) {
        const float* s = xr + ci * plane;
        __m512 xv[NP];
#pragma GCC unroll 4
        for (int v = 0; v < NP; ++v) xv[v] = _mm512_loadu_ps(s + vin * v);
#pragma GCC unroll 8
        for (int c = 0; c < CO; ++c) {
          const __m512 b = _mm512_set1_ps(w[c]);
#pragma GCC unroll 4
          for (int v = 0; v < NP; ++v) acc[v][c] = _mm512_fmadd_ps(xv[v], b, acc[v][c]);
        }
      }
    }
  }
  const int64_t co0 = cb * CO;
  const int cvalid = static_cast<int>(std::min<int64_t>(CO, pl.Nout - co0));
  const __mmask8 cmask = static_cast<__mmask8>((1u << cvalid) - 1u);
  float* orow = pl.out + ((n * g.OH + oh) * g.OW) * pl.ldo + co0;
  const int64_t vout = RM ? g.OW : 16;  // pixels between the vectors' outputs
  // 8x8 transposes in both 256-bit halves at once: out[j] = pixel j's 8
  // channels | pixel j+8's.
  const __m512i lo = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
  const __m512i hi = _mm512_setr_epi32(4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
#pragma GCC unroll 4
  for (int v = 0; v < NP; ++v) {
    const int64_t p0 = ow0 + vout * v;  // pixel index within image n, from row oh
    if (RM ? oh + v >= g.OH : p0 >= g.OW) break;
    const int lanes = static_cast<int>(std::min<int64_t>(16, RM ? g.OW : g.OW - p0));
    __m512 r[CO];
#pragma GCC unroll 8
    for (int c = 0; c < CO; ++c) {
      __m512 a = acc[v][c];
      if (pl.bias && c < cvalid) a = _mm512_add_ps(a, _mm512_set1_ps(pl.bias[co0 + c]));
      if (pl.act == Activation::relu) a = _mm512_max_ps(a, _mm512_setzero_ps());
      r[c] = a;
    }
    __m512 t[8], u[8], o[8];
    for (int i = 0; i < 4; ++i) {
      t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int h = 0; h < 2; ++h) {  // channels 0-3, 4-7
      u[4 * h + 0] = _mm512_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);
      u[4 * h + 1] = _mm512_shuffle_ps(t[4 * h], t[4 * h + 2], 0xEE);
      u[4 * h + 2] = _mm512_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
      u[4 * h + 3] = _mm512_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xEE);
    }
    for (int j = 0; j < 4; ++j) {
      o[j] = _mm512_permutex2var_ps(u[j], lo, u[4 + j]);
      o[j + 4] = _mm512_permutex2var_ps(u[j], hi, u[4 + j]);
    }
    float* op = orow + p0 * pl.ldo;
    for (int j = 0; j < 8; ++j) {
      if (j < lanes) _mm256_mask_storeu_ps(op + j * pl.ldo, cmask, _mm512_castps512_ps256(o[j]));
      if (j + 8 < lanes)
        _mm256_mask_storeu_ps(op + (j + 8) * pl.ldo, cmask, _mm512_extractf32x8_ps(o[j], 1));
    }
  }
}

template <int CG>
void image_cg(const Planar& pl, int64_t n, float* xp);

void image(const Planar& pl, int64_t n, float* xp) {
  switch (pl.g->Cg) {
    case 1: return image_cg<1>(pl, n, xp);
    case 2: return image_cg<2>(pl, n, xp);
    case 3: return image_cg<3>(pl, n, xp);
    case 4: return image_cg<4>(pl, n, xp);
    default: return image_cg<0>(pl, n, xp);
  }
}

// Output rows [oh0, oh1) of image n from its planar copy xp.
template <int CG>
void rows_cg(const Planar& pl, int64_t n, const float* xp, int64_t oh0, int64_t oh1);

template <int CG>
void image_cg(const Planar& pl, int64_t n, float* xp) {
  fill_planar(pl, n, xp);
  rows_cg<CG>(pl, n, xp, 0, pl.g->OH);
}

void rows(const Planar& pl, int64_t n, const float* xp, int64_t oh0, int64_t oh1) {
  switch (pl.g->Cg) {
    case 1: return rows_cg<1>(pl, n, xp, oh0, oh1);
    case 2: return rows_cg<2>(pl, n, xp, oh0, oh1);
    case 3: return rows_cg<3>(pl, n, xp, oh0, oh1);
    case 4: return rows_cg<4>(pl, n, xp, oh0, oh1);
    default: return rows_cg<0>(pl, n, xp, oh0, oh1);
  }
}

template <int CG>
void rows_cg(const Planar& pl, int64_t n, const float* xp, int64_t oh0, int64_t oh1) {
  const PatchGeom& g = *pl.g;
  const int64_t ncb = ceil_div(pl.Nout, CO);
  const int64_t nvec = ceil_div(g.OW, 16);
  // Row outer, channel block inner: an output row is finished while its
  // cache lines are at hand, and the row's input stays in L1.
  if (nvec == 1) {  // short rows: 3 rows per tile
    for (int64_t oh = oh0; oh < oh1; oh += 3)
      for (int64_t cb = 0; cb < ncb; ++cb) {
        if (oh1 - oh >= 3)
          tile<3, true, CG>(pl, xp, n, oh, 0, cb);
        else if (oh1 - oh == 2)
          tile<2, true, CG>(pl, xp, n, oh, 0, cb);
        else
          tile<1, true, CG>(pl, xp, n, oh, 0, cb);
      }
    return;
  }
  for (int64_t oh = oh0; oh < oh1; ++oh)
    for (int64_t cb = 0; cb < ncb; ++cb) {
      int64_t v = 0;
      for (; v + 3 <= nvec; v += 3) tile<3, false, CG>(pl, xp, n, oh, v * 16, cb);
      if (nvec - v == 2) tile<2, false, CG>(pl, xp, n, oh, v * 16, cb);
      if (nvec - v == 1) tile<1, false, CG>(pl, xp, n, oh, v * 16, cb);
    }
}

}  // namespace

void planar_conv_avx512(const PatchGeom& g, int64_t P, int64_t Nout, const float* wmat, int64_t ldw,
                        const float* bias, Activation act, float* out, int64_t ldo) {
  const int64_t N = P / (g.OH * g.OW);
  const int64_t K = g.depth();
  const int64_t ncb = ceil_div(Nout, CO);
  // Weights [cb][k][CO], zero-padded channels; k = (kh, kw, ci) as in wmat.
  float* wp = thread_scratch(ScratchSlot::conv_1, static_cast<size_t>(ncb * K * CO));
  for (int64_t cb = 0; cb < ncb; ++cb)
    for (int64_t k = 0; k < K; ++k)
      for (int c = 0; c < CO; ++c) {
        const int64_t co = cb * CO + c;
        wp[(cb * K + k) * CO + c] = co < Nout ? wmat[k * ldw + co] : 0.0f;
      }
  Planar pl{&g, 0, g.sw, 0, wp, nullptr, Nout, bias, act, out, ldo};
  pl.RH = (g.OH - 1) * g.sh + (g.KH - 1) * g.dh + 1;
  // Vector reads run up to 16*ceil(OW/16) pixels past a row start.
  pl.L = ceil_div(g.OW, 16) * 16 + (g.KW - 1) * g.dw / g.sw + 1;
  std::vector<int64_t> kwoff(static_cast<size_t>(g.KW));  // no divisions in the tiles
  for (int64_t kw = 0; kw < g.KW; ++kw) {
    const int64_t cw = kw * g.dw;
    kwoff[kw] = (cw % pl.S) * pl.L + cw / pl.S;
  }
  pl.kwoff = kwoff.data();
  const size_t xsize = static_cast<size_t>(g.Cg * pl.RH * pl.S * pl.L);
  const int nt = threads_for_flops(2.0 * P * K * Nout);
  if (nt <= 1) {
    float* xp = thread_scratch(ScratchSlot::conv_0, xsize);
    for (int64_t n = 0; n < N; ++n) image(pl, n, xp);
    return;
  }
  if (N >= 2 * nt) {
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
#endif
    for (int64_t n = 0; n < N; ++n) image(pl, n, thread_scratch(ScratchSlot::conv_0, xsize));
    return;
  }
  // Fewer images than 2 per thread (a stem at batch 1): one shared copy per
  // image, its output rows split over the threads.
  float* xp = thread_scratch(ScratchSlot::conv_0, xsize);
  for (int64_t n = 0; n < N; ++n) {
    fill_planar(pl, n, xp);
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
#ifdef CNNX_HAVE_OPENMP
      const int t = omp_get_thread_num(), got = omp_get_num_threads();
#else
      const int t = 0, got = 1;
#endif
      // Whole groups of 3 rows for short rows (3-row tiles).
      const int64_t unit = ceil_div(g.OW, 16) == 1 ? 3 : 1;
      const int64_t units = ceil_div(g.OH, unit);
      rows(pl, n, xp, std::min(g.OH, units * t / got * unit),
           std::min(g.OH, units * (t + 1) / got * unit));
    }
  }
}

}  // namespace conv_detail
}  // namespace cnnx
