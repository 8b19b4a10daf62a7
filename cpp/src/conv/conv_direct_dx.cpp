// Backward-data of strided convolutions on the direct kernel's register
// tiles (conv_direct.h), by stride phases.
//
// dx pixel (ih, iw) receives dy[oh, ow] * w[kh, kw] for oh*sh - pt + kh = ih:
// only the taps with kh = (ih + pt) mod sh (and the same for kw) reach it,
// and for a phase (ph, pw) = ((ih + pt) mod sh, (iw + pl) mod sw) the dy
// pixel each tap reads is at a constant offset from (ih div sh, iw div sw).
// So each phase is a stride-1 convolution of dy (C_out channels in) with
// the transposed taps of that phase (C_in channels out), written to every
// sh-th row and sw-th column of dx: no scatter, no col2im buffer, each dx
// value written once (phases without taps write zeros).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "cnnx/threading.h"
#include "common/scratch.h"
#include "conv/conv_direct.h"
#include "conv/conv_internal.h"

namespace cnnx {
namespace conv_detail {

bool direct_dx_preferred(const Conv2dShape& s) {
  if (direct_mode() == 0 || s.is_depthwise()) return false;
  if (s.stride_h == 1 && s.stride_w == 1) return false;  // the stride-1 paths
  if (s.dilation_h != 1 || s.dilation_w != 1 || s.KH * s.KW > 64) return false;
  // 1x1: one tap, a plain GEMM on the pixels of one phase (the col2im path
  // does that with depth blocking; measured 10% faster on 1x1 stride 2).
  if (s.KH * s.KW == 1 && direct_mode() != 2) return false;
  // dx has C_in channels per group: the tile's channel block must be filled
  // (32+ on AVX-512, 16+ on AVX2), and dy's channels are the depth.
  const int64_t cig = s.cin_per_group(), cog = s.cout_per_group();
  const DirectKernel k = direct_kernel(cig);
  if (!k.fn) return false;
  if (cig < (active_isa() == Isa::avx512 ? 32 : 16) || cog < 16) return false;
  // The weights are transposed on every call: not worth it for few pixels.
  return direct_mode() == 2 || s.N * s.out_h() * s.out_w() >= 256 ||
         s.weight_size() / s.groups <= 65536;
}

namespace {

struct Phase {
  int64_t ph, pw;                 // (ih + pt) mod sh, (iw + pl) mod sw
  int64_t ih0, iw0;               // first dx row / column of the phase
  int64_t rows, cols;             // dx rows / columns in the phase
  std::vector<int64_t> taps;      // kh*KW + kw
  std::vector<int64_t> doh, dow;  // per tap: dy offset from (a, b)
};

}  // namespace

void direct_backward_data(const Conv2dShape& s, const float* dy, const float* w, float* dx) {
  const int64_t OH = s.out_h(), OW = s.out_w();
  const int64_t sh = s.stride_h, sw = s.stride_w;
  const int64_t cig = s.cin_per_group(), cog = s.cout_per_group();
  const DirectKernel k = direct_kernel(cig);
  const int R = k.R;
  const int64_t CB = k.CB, ncb = ceil_div(cig, CB);
  const int64_t ntap = s.KH * s.KW;
  // Phases: dx row ih = ih0 + sh*a has (ih + pt) mod sh = ph.
  std::vector<Phase> phases;
  for (int64_t ph = 0; ph < sh; ++ph)
    for (int64_t pw = 0; pw < sw; ++pw) {
      Phase p;
      p.ph = ph;
      p.pw = pw;
      p.ih0 = ((ph - s.pad_top) % sh + sh) % sh;
      p.iw0 = ((pw - s.pad_left) % sw + sw) % sw;
      p.rows = p.ih0 < s.H ? ceil_div(s.H - p.ih0, sh) : 0;
      p.cols = p.iw0 < s.W ? ceil_div(s.W - p.iw0, sw) : 0;
      for (int64_t kh = 0; kh < s.KH; ++kh) {
        if ((kh - ph) % sh) continue;
        for (int64_t kw = 0; kw < s.KW; ++kw) {
          if ((kw - pw) % sw) continue;
          p.taps.push_back(kh * s.KW + kw);
          // oh = (ih + pt - kh) / sh = a + (ih0 + pt - kh) / sh (exact)
          p.doh.push_back((p.ih0 + s.pad_top - kh) / sh);
          p.dow.push_back((p.iw0 + s.pad_left - kw) / sw);
        }
      }
      if (p.rows > 0 && p.cols > 0) phases.push_back(std::move(p));
    }
  // Transposed weights per group and channel block of dx: [cb][tap][co][CB].
  const int64_t bsize = ntap * cog * CB;
  float* wt = thread_scratch(ScratchSlot::conv_3, static_cast<size_t>(s.groups * ncb * bsize));
  for (int64_t g = 0; g < s.groups; ++g)
    for (int64_t cb = 0; cb < ncb; ++cb) {
      const int64_t c0 = cb * CB, cn = std::min(CB, cig - c0);
      float* d = wt + (g * ncb + cb) * bsize;
      for (int64_t t = 0; t < ntap; ++t, d += cog * CB) {
        // rows of w read whole (contiguous co), written down columns of d
        for (int64_t c = 0; c < cn; ++c) {
          const float* src = w + (t * cig + c0 + c) * s.C_out + g * cog;
          for (int64_t co = 0; co < cog; ++co) d[co * CB + c] = src[co];
        }
        for (int64_t c = cn; c < CB; ++c)
          for (int64_t co = 0; co < cog; ++co) d[co * CB + c] = 0.0f;
      }
    }
  // Units: (image, phase, dx row of the phase); each writes its own pixels.
  std::vector<int64_t> first(phases.size() + 1, 0);
  for (size_t i = 0; i < phases.size(); ++i) first[i + 1] = first[i] + phases[i].rows;
  const int64_t per_image = first.back();
  const int64_t units = s.N * per_image;
  const double flops = 2.0 * s.N * OH * OW * ntap * cig * s.C_out;
  const int nt = threads_for_flops(flops);

  auto run = [&](int64_t u0, int64_t u1) {
    const int64_t maxtaps = ntap;
    float* scratch = thread_scratch(
        ScratchSlot::conv_0, static_cast<size_t>(cog + 16 + 2 * (maxtaps * R + maxtaps) + 64));
    std::memset(scratch, 0, sizeof(float) * cog);
    const float* zeros = scratch;
    auto** ptrs = reinterpret_cast<const float**>(scratch + (cog + 16) / 16 * 16);
    const float** ws = ptrs + maxtaps * R;
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t n = u / per_image, rem = u % per_image;
      const size_t pi = static_cast<size_t>(std::upper_bound(first.begin(), first.end(), rem) -
                                            first.begin() - 1);
      const Phase& p = phases[pi];
      const int64_t a = rem - first[pi];
      const int64_t ih = p.ih0 + sh * a;
      for (int64_t g = 0; g < s.groups; ++g) {
        const float* dyn = dy + n * OH * OW * s.C_out + g * cog;
        for (int64_t b0 = 0; b0 < p.cols; b0 += R) {
          const int m = static_cast<int>(std::min<int64_t>(R, p.cols - b0));
          // Taps whose dy row exists for this dx row; their pixel pointers.
          int64_t kept = 0;
          int64_t keep_tap[64];
          for (size_t t = 0; t < p.taps.size(); ++t) {
            const int64_t oh = a + p.doh[t];
            if (oh < 0 || oh >= OH) continue;
            bool any = false;
            const float** pr = ptrs + kept * R;
            for (int r = 0; r < R; ++r) {
              const int64_t ow = b0 + std::min(r, m - 1) + p.dow[t];
              if (ow >= 0 && ow < OW) {
                pr[r] = dyn + (oh * OW + ow) * s.C_out;
                any = true;
              } else {
                pr[r] = zeros;
              }
            }
            if (any && kept < 64) keep_tap[kept++] = p.taps[t];
          }
          for (int64_t cb = 0; cb < ncb; ++cb) {
            const float* wb = wt + (g * ncb + cb) * bsize;
            for (int64_t i = 0; i < kept; ++i) ws[i] = wb + keep_tap[i] * cog * CB;
            DirectTile tile;
            tile.a = ptrs;
            tile.ws = ws;
            tile.nseg = kept;
            tile.len = cog;
            tile.y = dx + ((n * s.H + ih) * s.W + p.iw0 + sw * b0) * s.C_in + g * cig + cb * CB;
            tile.ldy = sw * s.C_in;
            tile.m = m;
            tile.nch = static_cast<int>(std::min(CB, cig - cb * CB));
            tile.bias = tile.scale = tile.res = nullptr;
            tile.relu = false;
            tile.relu_max = INFINITY;
            tile.accumulate = false;
            tile.final = true;
            k.fn(tile);
          }
        }
      }
    }
  };
  if (nt <= 1 || units < 2) {
    run(0, units);
    return;
  }
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel for num_threads(nt) schedule(dynamic, 4)
#endif
  for (int64_t u = 0; u < units; ++u) run(u, u + 1);
}

}  // namespace conv_detail
}  // namespace cnnx
