// Driver of the direct convolution (conv_direct.h): weight packing, the
// pixel pointers of each tile, zero-padded row bands, and the split of the
// work over threads without barriers: whole images per thread for batches,
// output-channel blocks (each thread reads only its share of the weights)
// or pixel ranges for one image.
#include "conv/conv_direct.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "cnnx/threading.h"
#include "common/scratch.h"
#include "conv/conv_internal.h"

#ifdef CNNX_HAVE_OPENMP
#include <omp.h>
#endif

namespace cnnx {
namespace conv_detail {

DirectKernel direct_kernel(int64_t nout) {
  switch (active_isa()) {
    case Isa::avx512: return direct_kernel_avx512(nout);
    case Isa::avx2: return direct_kernel_avx2(nout);
    default: return {};
  }
}

DirectLayout direct_layout(const Conv2dShape& s, int64_t group) {
  DirectLayout l;
  l.s = s;
  l.g = group;
  const int64_t cig = s.cin_per_group(), cog = s.cout_per_group();
  l.k = direct_kernel(cog);
  if (!l.k.fn) return l;
  // Few channels per tap: one segment per filter row (its KW taps adjacent
  // in memory), read from a zero-padded copy when the layer pads; many
  // channels: one segment per tap, straight from the image (taps outside
  // it read a zero run).
  const bool merge = s.KW > 1 && s.dilation_w == 1 && cig < 32;
  const bool pads = s.pad_top || s.pad_bottom || s.pad_left || s.pad_right;
  l.padded = merge && (pads || s.groups > 1);
  const bool merged = merge && (l.padded || s.groups == 1);
  l.nseg = merged ? s.KH : s.KH * s.KW;
  l.len = merged ? s.KW * cig : cig;
  l.ncb = ceil_div(cog, l.k.CB);
  return l;
}

namespace {
// Channel block cb: d[k][CB] = w[k][g*cog + cb*CB + c], zero past cog.
// k = s*len + l is the HWIO depth index (kh, kw, ci) in both layouts.
void pack_block(const DirectLayout& l, const float* w, int64_t cb, float* d) {
  const Conv2dShape& s = l.s;
  const int64_t cog = s.cout_per_group(), K = l.nseg * l.len, CB = l.k.CB;
  const int64_t c0 = cb * CB, cn = std::min(CB, cog - c0);
  const float* src = w + l.g * cog + c0;
  // Rows far apart (C_out floats): fetch a few ahead.
  constexpr int64_t kAhead = 8;
  if (cn == CB) {
    for (int64_t k = 0; k < K; ++k, d += CB, src += s.C_out) {
      if (k + kAhead < K)
        for (int64_t c = 0; c < CB; c += 16) __builtin_prefetch(src + kAhead * s.C_out + c);
      for (int64_t c = 0; c < CB; ++c) d[c] = src[c];
    }
    return;
  }
  for (int64_t k = 0; k < K; ++k, d += CB, src += s.C_out) {
    std::memcpy(d, src, sizeof(float) * cn);
    std::memset(d + cn, 0, sizeof(float) * (CB - cn));
  }
}
}  // namespace

void direct_pack_weights(const DirectLayout& l, const float* w, float* wp) {
  for (int64_t cb = 0; cb < l.ncb; ++cb) pack_block(l, w, cb, wp + cb * l.nseg * l.len * l.k.CB);
}

namespace {

struct Job {
  const DirectLayout* l;
  const float* wp;  // packed weights, or null: pack each block from w when used
  const float* w;   // HWIO weights (when wp is null)
  const float* x;
  float* y;
  const DirectEpi* ep;
};

// Output rows [oh0, oh1) of image n, the padded rows they read, copied into
// a thread-local band (pixel (oh, ow) reads band + ((oh*sh - r0)*Wp + ow*sw)*Cg).
struct Band {
  const float* buf = nullptr;
  int64_t r0 = 0, Wp = 0;
};

Band fill_band(const DirectLayout& l, const float* x, int64_t n, int64_t oh0, int64_t oh1) {
  const Conv2dShape& s = l.s;
  const int64_t cig = s.cin_per_group();
  Band b;
  b.r0 = oh0 * s.stride_h;
  const int64_t r1 = (oh1 - 1) * s.stride_h + (s.KH - 1) * s.dilation_h + 1;
  b.Wp = (s.out_w() - 1) * s.stride_w + (s.KW - 1) * s.dilation_w + 1;
  const int64_t rows = r1 - b.r0;
  float* buf = thread_scratch(ScratchSlot::conv_2, static_cast<size_t>(rows * b.Wp * cig + 16));
  std::memset(buf, 0, sizeof(float) * rows * b.Wp * cig);
  const float* img = x + n * s.H * s.W * s.C_in + l.g * cig;
  const int64_t iw_lo = std::max<int64_t>(0, -s.pad_left);
  const int64_t iw_hi = std::min<int64_t>(s.W, b.Wp - s.pad_left);
  for (int64_t r = b.r0; r < r1; ++r) {
    const int64_t ih = r - s.pad_top;
    if (ih < 0 || ih >= s.H || iw_lo >= iw_hi) continue;
    float* d = buf + ((r - b.r0) * b.Wp + s.pad_left + iw_lo) * cig;
    const float* src = img + (ih * s.W + iw_lo) * s.C_in;
    if (cig == s.C_in) {
      std::memcpy(d, src, sizeof(float) * (iw_hi - iw_lo) * cig);
    } else {
      for (int64_t iw = iw_lo; iw < iw_hi; ++iw, d += cig, src += s.C_in)
        std::memcpy(d, src, sizeof(float) * cig);
    }
  }
  b.buf = buf;
  return b;
}

// Weights of one channel block beyond this many bytes are swept in depth
// chunks of about this size (kept in L2) over a group of tiles whose
// partial sums wait in y, instead of being streamed once per tile.
constexpr int64_t kChunkBytes = 64 * 1024;
// Tiles whose pointers are set up together (and share a chunk's weights).
constexpr int64_t kGroupTiles = 32;
// Largest R of any tile.
constexpr int kMaxR = 32;

// Pixels [p0, p1) (flat within image n) x channel blocks [cb0, cb1). For a
// padded layout the pixels lie in the rows of `band`.
void run_pixels(const Job& j, int64_t n, int64_t p0, int64_t p1, int64_t cb0, int64_t cb1,
                const Band& band) {
  const DirectLayout& l = *j.l;
  const Conv2dShape& s = l.s;
  const int R = l.k.R;
  const int64_t CB = l.k.CB, K = l.nseg * l.len;
  const int64_t OH = s.out_h(), OW = s.out_w(), cig = s.cin_per_group(), cog = s.cout_per_group();
  const bool merged = l.nseg == s.KH && s.KW > 1;
  // Depth chunks: whole segments grouped, or one segment split in l.
  const int64_t per_chunk = std::max<int64_t>(16, kChunkBytes / (4 * CB));
  const bool chunked = K * CB * 4 > 4 * kChunkBytes && p1 - p0 > R;
  const int64_t seg_per_chunk = chunked ? std::max<int64_t>(1, per_chunk / l.len) : l.nseg;
  const int64_t l_chunk = chunked && l.len > per_chunk ? per_chunk : l.len;
  // Scratch: zeros for taps outside the image, the group's pointers
  // (tile-major, then segment-major), each tile's kept segments.
  const int64_t G = std::min<int64_t>(kGroupTiles, ceil_div(p1 - p0, R));
  const int64_t nptr = G * l.nseg * R;
  float* scratch =
      thread_scratch(ScratchSlot::conv_0,
                     static_cast<size_t>(l.len + 16 + 2 * nptr + 2 * G * l.nseg + 2 * l.nseg + 64));
  std::memset(scratch, 0, sizeof(float) * l.len);
  const float* zeros = scratch;
  auto** ptrs = reinterpret_cast<const float**>(scratch + (l.len + 16) / 16 * 16);
  int64_t* segk = reinterpret_cast<int64_t*>(ptrs + nptr);  // [G][nseg] kept segment ids
  int64_t* nkept = segk + G * l.nseg;                       // [G]
  const float** ws = reinterpret_cast<const float**>(nkept + G);
  const float* img = j.x + n * s.H * s.W * s.C_in + l.g * cig;
  const int64_t out0 = n * OH * OW;
  // Packed weights: each tile group meets every channel block while its
  // input is in cache. Packing per call: each block is packed into a
  // thread-local, L2-sized buffer right before all the pixels use it.
  const bool jit = j.wp == nullptr;
  float* wjit = jit ? thread_scratch(ScratchSlot::conv_1, static_cast<size_t>(K * CB)) : nullptr;
  for (int64_t cbo = cb0; cbo < (jit ? cb1 : cb0 + 1); ++cbo) {
    const int64_t cb_first = jit ? cbo : cb0, cb_last = jit ? cbo + 1 : cb1;
    if (jit) pack_block(l, j.w, cbo, wjit);
    for (int64_t gq = p0; gq < p1; gq += G * R) {
      const int64_t gend = std::min(p1, gq + G * R);
      const int64_t tiles = ceil_div(gend - gq, R);
      for (int64_t ti = 0; ti < tiles; ++ti) {
        const int64_t q0 = gq + ti * R;
        const int m = static_cast<int>(std::min<int64_t>(R, gend - q0));
        // Each pixel's first input row and column (no divisions per segment).
        int64_t ih0[kMaxR], iw0[kMaxR];
        {
          int64_t oh = q0 / OW, ow = q0 % OW;
          for (int r = 0; r < R; ++r) {
            ih0[r] = oh * s.stride_h;
            iw0[r] = ow * s.stride_w;
            if (r + 1 < m && ++ow == OW) {  // rows past m repeat the last pixel
              ow = 0;
              ++oh;
            }
          }
        }
        // Pointers of each segment; unless chunked, segments all outside the
        // image are dropped.
        int64_t kept = 0;
        for (int64_t sg = 0; sg < l.nseg; ++sg) {
          const int64_t kh = merged ? sg : sg / s.KW, kw = merged ? 0 : sg % s.KW;
          const float** pr = ptrs + (ti * l.nseg + kept) * R;
          bool any = true;
          if (l.padded) {
            const float* b = band.buf + (kh * s.dilation_h - band.r0) * band.Wp * cig;
            for (int r = 0; r < R; ++r) pr[r] = b + (ih0[r] * band.Wp + iw0[r]) * cig;
          } else {
            any = false;
            const int64_t dh = kh * s.dilation_h - s.pad_top, dw = kw * s.dilation_w - s.pad_left;
            for (int r = 0; r < R; ++r) {
              const int64_t ih = ih0[r] + dh, iw = iw0[r] + dw;
              // merged without padding: the whole row of taps is inside
              if (ih >= 0 && ih < s.H && iw >= 0 && iw < s.W) {
                pr[r] = img + (ih * s.W + iw) * s.C_in;
                any = true;
              } else {
                pr[r] = zeros;
              }
            }
          }
          if (any || chunked) segk[ti * l.nseg + kept++] = sg;
        }
        nkept[ti] = kept;
      }
      for (int64_t cb = cb_first; cb < cb_last; ++cb) {
        const float* wb = jit ? wjit : j.wp + cb * K * CB;
        const int64_t co = l.g * cog + cb * CB;
        DirectTile t;
        t.ldy = s.C_out;
        t.nch = static_cast<int>(std::min(CB, cog - cb * CB));
        t.bias = j.ep->bias ? j.ep->bias + co : nullptr;
        t.scale = j.ep->scale ? j.ep->scale + co : nullptr;
        t.relu = j.ep->relu;
        t.relu_max = j.ep->relu_max;
        for (int64_t s0 = 0; s0 < l.nseg; s0 += seg_per_chunk) {
          const int64_t s1 = std::min(l.nseg, s0 + seg_per_chunk);
          for (int64_t l0 = 0; l0 < l.len; l0 += l_chunk) {
            const int64_t l1 = std::min(l.len, l0 + l_chunk);
            t.accumulate = s0 > 0 || l0 > 0;
            t.final = s1 == l.nseg && l1 == l.len;
            t.len = l1 - l0;
            for (int64_t ti = 0; ti < tiles; ++ti) {
              const int64_t q0 = gq + ti * R;
              const float** pr = ptrs + ti * l.nseg * R;
              int64_t ns = 0;
              if (chunked) {  // all segments kept: this chunk's are [s0, s1)
                if (l0 > 0 || l_chunk < l.len) {
                  // one segment, split in l: offset its pointers (in place,
                  // undone below)
                  for (int r = 0; r < R; ++r) pr[s0 * R + r] += l0;
                }
                t.a = pr + s0 * R;
                for (int64_t sg = s0; sg < s1; ++sg) ws[ns++] = wb + (sg * l.len + l0) * CB;
              } else {
                t.a = pr;
                for (int64_t i = 0; i < nkept[ti]; ++i)
                  ws[ns++] = wb + segk[ti * l.nseg + i] * l.len * CB;
              }
              t.ws = ws;
              t.nseg = ns;
              t.y = j.y + (out0 + q0) * s.C_out + co;
              t.m = static_cast<int>(std::min<int64_t>(R, gend - q0));
              t.res = j.ep->res ? j.ep->res + (out0 + q0) * s.C_out + co : nullptr;
              l.k.fn(t);
              if (chunked && (l0 > 0 || l_chunk < l.len))
                for (int r = 0; r < R; ++r) pr[s0 * R + r] -= l0;
            }
          }
        }
      }
    }
  }
}

// Whole image n on the calling thread.
void run_image(const Job& j, int64_t n) {
  const DirectLayout& l = *j.l;
  const int64_t OH = l.s.out_h(), OW = l.s.out_w();
  if (!l.padded) {
    run_pixels(j, n, 0, OH * OW, 0, l.ncb, Band{});
    return;
  }
  // Bands of a few output rows: the padded copy stays in cache.
  const int64_t rows = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, OW));
  for (int64_t a = 0; a < OH; a += rows) {
    const int64_t e = std::min(OH, a + rows);
    const Band b = fill_band(l, j.x, n, a, e);
    run_pixels(j, n, a * OW, e * OW, 0, l.ncb, b);
  }
}

// Share `part` of `parts` of image n: channel blocks when they split evenly
// (each thread reads only its weights), else pixels (rows for a padded layout).
void run_image_part(const Job& j, int64_t n, int part, int parts) {
  const DirectLayout& l = *j.l;
  const int64_t OH = l.s.out_h(), OW = l.s.out_w();
  const int R = l.k.R;
  if (!l.padded && l.ncb >= parts && l.ncb % parts == 0) {
    run_pixels(j, n, 0, OH * OW, l.ncb * part / parts, l.ncb * (part + 1) / parts, Band{});
    return;
  }
  if (!l.padded) {
    const int64_t tiles = ceil_div(OH * OW, R);
    const int64_t t0 = tiles * part / parts, t1 = tiles * (part + 1) / parts;
    run_pixels(j, n, t0 * R, std::min(OH * OW, t1 * R), 0, l.ncb, Band{});
    return;
  }
  const int64_t a = OH * part / parts, e = OH * (part + 1) / parts;
  if (a >= e) return;
  const Band b = fill_band(l, j.x, n, a, e);
  run_pixels(j, n, a * OW, e * OW, 0, l.ncb, b);
}

}  // namespace

void direct_run_part(const DirectLayout& l, const float* wp, const float* x, int64_t n, float* y,
                     const DirectEpi& ep, int part, int parts, const float* w) {
  const Job j{&l, wp, w, x, y, &ep};
  if (parts <= 1) {
    for (int64_t i = 0; i < n; ++i) run_image(j, i);
    return;
  }
  if (n >= 2 * parts) {
    for (int64_t i = part; i < n; i += parts) run_image(j, i);
    return;
  }
  for (int64_t i = 0; i < n; ++i) run_image_part(j, i, part, parts);
}

void direct_run(const DirectLayout& l, const float* wp, const float* x, int64_t n, float* y,
                const DirectEpi& ep, int threads) {
  if (n <= 0) return;
  const Conv2dShape& s = l.s;
  const double flops =
      2.0 * n * s.out_h() * s.out_w() * s.KH * s.KW * s.cin_per_group() * s.cout_per_group();
  int nt = threads > 0 ? std::min(threads, get_num_threads()) : threads_for_flops(flops);
#ifndef CNNX_HAVE_OPENMP
  nt = 1;
#endif
  if (nt <= 1) {
    direct_run_part(l, wp, x, n, y, ep, 0, 1);
    return;
  }
  const Job j{&l, wp, nullptr, x, y, &ep};
#ifdef CNNX_HAVE_OPENMP
  if (n >= 2 * nt) {
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int64_t i = 0; i < n; ++i) run_image(j, i);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num(), got = omp_get_num_threads();
    for (int64_t i = 0; i < n; ++i) run_image_part(j, i, t, got);
  }
#endif
}

namespace {
PatchGeom group_geom(const Conv2dShape& s) {
  return PatchGeom{nullptr,      s.H,          s.W,       s.C_in,     0,          s.cin_per_group(),
                   s.out_h(),    s.out_w(),    s.KH,      s.KW,       s.stride_h, s.stride_w,
                   s.dilation_h, s.dilation_w, s.pad_top, s.pad_left, 0};
}
}  // namespace

// CNNX_CONV_DIRECT=0 turns it off (to compare), =1 forces it wherever a
// tile exists (tests).
int direct_mode() {
  static const int mode = [] {
    const char* e = std::getenv("CNNX_CONV_DIRECT");
    return e && e[0] == '0' ? 0 : (e && e[0] == '1' ? 2 : 1);
  }();
  return mode;
}

void direct_conv(const DirectLayout& l, const float* w, const float* x, int64_t n, float* y,
                 const DirectEpi& ep) {
  if (n <= 0) return;
  const Conv2dShape& s = l.s;
  const double flops =
      2.0 * n * s.out_h() * s.out_w() * s.KH * s.KW * s.cin_per_group() * s.cout_per_group();
  int nt = threads_for_flops(flops);
#ifndef CNNX_HAVE_OPENMP
  nt = 1;
#endif
  if (n >= 2 * nt && (nt > 1 || n > 1)) {
    // Many images: pack once (threads take blocks), then whole images.
    float* wp = thread_scratch(ScratchSlot::conv_3, static_cast<size_t>(l.wsize()));
    const Job j{&l, wp, nullptr, x, y, &ep};
    const int64_t bsize = l.nseg * l.len * l.k.CB;
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
#ifdef CNNX_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
      for (int64_t cb = 0; cb < l.ncb; ++cb) pack_block(l, w, cb, wp + cb * bsize);
#ifdef CNNX_HAVE_OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
      for (int64_t i = 0; i < n; ++i) run_image(j, i);
    }
    return;
  }
  // One image or a few: each thread packs the blocks it computes.
  const Job j{&l, nullptr, w, x, y, &ep};
  if (nt <= 1) {
    for (int64_t i = 0; i < n; ++i) run_image(j, i);
    return;
  }
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num(), got = omp_get_num_threads();
    for (int64_t i = 0; i < n; ++i) run_image_part(j, i, t, got);
  }
#endif
}

bool direct_preferred(const Conv2dShape& s, bool packed) {
  const int mode = direct_mode();
  if (mode == 0 || s.is_depthwise()) return false;
  const int64_t cog = s.cout_per_group();
  if (!direct_kernel(cog).fn) return false;
  if (mode == 2) return true;
  const PatchGeom g = group_geom(s);
  const int64_t P = s.N * s.out_h() * s.out_w();
  const Isa isa = active_isa();
  if (!packed && isa == Isa::avx512 && cog >= 32 && winograd_preferred(g, P, cog)) {
    // Winograd transforms the weights on every call: with fewer than 16
    // output tiles (7x7 at batch 1: 4 tiles of 4x4) that costs more than the
    // multiplies it saves (7x7x512: 5.9 -> 3.4 ms on one core with the
    // direct kernel).
    const int64_t M = 7 - s.KH;  // output tile: 4x4 for 3x3, 2x2 for 5x5
    return s.N * ceil_div(s.out_h(), M) * ceil_div(s.out_w(), M) < 16;
  }
  // 1x1 stride 1: the GEMM reads the image in place as well. With packed
  // weights the direct kernel wins only where the GEMM's per-call packing of
  // them weighs: ResNet-50's 1x1 layers at batch 1 (one core), 7x7 and 14x14
  // (>= 1300 weights per pixel) 0.7-0.9x the time, 28x28 and 56x56 (5-84)
  // 1.05-1.2x; MobileNetV2's at 14x14 (280) 1.2x, at 7x7 (3100) 0.8x.
  if (g.is_identity() && (!packed || s.weight_size() / s.groups < 1024 * P)) return false;
  if (!packed) {
    // Packing big weights on every call costs more than it saves for a few
    // pixels (a caller that keeps ConvPacked pays it once).
    if (P < 256 && s.weight_size() / s.groups > 65536) return false;
  }
  if (isa == Isa::avx512) {
    // Measured on Zen 4: with fewer than 32 output channels the tile (one or
    // two vectors wide) is load-bound and igemm or the pixel-vectorised
    // kernels win; with 32 or more, this beats them (RGB 3x3 stems: 1.3x
    // "planar"; 7x7 stride-2 stem: equal). Winograd wins on 3x3 images of
    // 14x14 and more (ResNet-50 at batch 1: 1.2-2.7x, but 0.4x at 7x7).
    if (cog < 32 || planar_flat_preferred(g, P, cog)) return false;
    if (winograd_preferred(g, P, cog) && (!packed || s.out_h() * s.out_w() >= 100)) return false;
    return true;
  }
  // AVX2: 3-4x igemm on narrow layers (16-64 channels, RGB stems), 1.9x
  // F(2x2,5x5) on LeNet's conv2, 1.2-1.4x the implicit GEMM on 3x3 layers of
  // 64-128 channels; fewer than 16 outputs leave the tile's second vector
  // empty, and weights over 1 MB (16-channel blocks) ran 10-20% slower.
  return cog >= 16 && (packed || s.weight_size() / s.groups <= 262144);
}

}  // namespace conv_detail
}  // namespace cnnx
