// Packing image patches straight into the GEMM's micro-panels (implicit
// GEMM): no im2col matrix ever exists, only the panel the GEMM is about to
// consume (see PackSource in cnnx/gemm.h).
#include <algorithm>
#include <cstring>

#include "conv/conv_internal.h"

namespace cnnx {
namespace conv_detail {
namespace {

// Rows are output pixels, depth is k = (kh, kw, ci). For each panel of
// `width` pixels and each k, the `width` patch values at that k.
void pack_rows(const void* ctx, int64_t r0, int64_t rows, int64_t k0, int64_t kc, int width,
               float* dst) {
  const PatchGeom& g = *static_cast<const PatchGeom*>(ctx);
  if (g.Cg >= 8 && width <= 16 && active_isa() == Isa::avx512) {
    pack_rows_avx512(g, r0, rows, k0, kc, width, dst);
    return;
  }
  const int64_t ohw = g.OH * g.OW;
  const int64_t img = g.H * g.W * g.C;
  // Taps covered by [k0, k0 + kc).
  const int64_t tap0 = k0 / g.Cg, ci0 = k0 % g.Cg;
  for (int64_t p = 0; p < rows; p += width) {
    const int w = static_cast<int>(std::min<int64_t>(width, rows - p));
    if (w < width) std::memset(dst, 0, sizeof(float) * width * kc);
    int64_t m = g.p0 + r0 + p;
    int64_t n = m / ohw, rem = m % ohw;
    int64_t oh = rem / g.OW, ow = rem % g.OW;
    for (int i = 0; i < w; ++i) {
      const int64_t ih0 = oh * g.sh - g.pt, iw0 = ow * g.sw - g.pl;
      const float* base = g.x + n * img + g.c0;
      float* d = dst + i;
      int64_t tap = tap0, ci = ci0, kk = 0;
      int64_t kh = tap / g.KW, kw = tap % g.KW;
      while (kk < kc) {
        const int64_t len = std::min(g.Cg - ci, kc - kk);
        const int64_t ih = ih0 + kh * g.dh, iw = iw0 + kw * g.dw;
        float* dd = d + kk * width;
        if (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W) {
          const float* src = base + (ih * g.W + iw) * g.C + ci;
          for (int64_t j = 0; j < len; ++j) dd[j * width] = src[j];
        } else {
          for (int64_t j = 0; j < len; ++j) dd[j * width] = 0.0f;
        }
        kk += len;
        ci = 0;
        if (++kw == g.KW) {
          kw = 0;
          ++kh;
        }
      }
      if (++ow == g.OW) {
        ow = 0;
        if (++oh == g.OH) {
          oh = 0;
          ++n;
        }
      }
    }
    dst += static_cast<int64_t>(width) * kc;
  }
}

// Rows are k = (kh, kw, ci), depth is output pixels. For each panel of
// `width` k values and each pixel, the panel's patch values: runs of
// consecutive ci are contiguous in the image, so this is a few short copies.
void pack_cols(const void* ctx, int64_t r0, int64_t rows, int64_t k0, int64_t kc, int width,
               float* dst) {
  const PatchGeom& g = *static_cast<const PatchGeom*>(ctx);
  const int64_t ohw = g.OH * g.OW;
  const int64_t img = g.H * g.W * g.C;
  struct Seg {
    int64_t dy, dx, off;  // tap offsets in the image, offset of ci in the image pixel
    int pos, len;         // position in the panel row, length
  };
  Seg segs[128];
  for (int64_t p = 0; p < rows; p += width) {
    const int w = static_cast<int>(std::min<int64_t>(width, rows - p));
    // Split the panel's k range into runs of one tap each; when the kw taps
    // of a filter row are adjacent in memory (dw == 1, all channels), one run
    // per row, checked as a whole and split per tap only at the image border.
    const bool merge = g.dw == 1 && g.Cg == g.C;
    int ns = 0;
    for (int pos = 0; pos < w;) {
      const int64_t k = r0 + p + pos;
      const int64_t tap = k / g.Cg, ci = k % g.Cg;
      const int64_t run = merge ? (g.KW - tap % g.KW) * g.Cg - ci : g.Cg - ci;
      const int len = static_cast<int>(std::min<int64_t>(run, w - pos));
      if (ns < 128) segs[ns++] = Seg{(tap / g.KW) * g.dh, (tap % g.KW) * g.dw, g.c0 + ci, pos, len};
      pos += len;
    }
    int64_t m = g.p0 + k0;
    int64_t n = m / ohw, rem = m % ohw;
    int64_t oh = rem / g.OW, ow = rem % g.OW;
    float* d = dst;
    for (int64_t q = 0; q < kc; ++q, d += width) {
      const int64_t ih0 = oh * g.sh - g.pt, iw0 = ow * g.sw - g.pl;
      const float* base = g.x + n * img;
      for (int s = 0; s < ns; ++s) {
        const Seg& sg = segs[s];
        const int64_t ih = ih0 + sg.dy, iw = iw0 + sg.dx;
        float* dd = d + sg.pos;
        // Last pixel column the run touches (a merged run spans several taps).
        const int64_t iw_last = iw + (sg.off + sg.len - 1 - g.c0) / g.C;
        if (ih >= 0 && ih < g.H && iw >= 0 && iw_last < g.W) {
          const float* src = base + (ih * g.W + iw) * g.C + sg.off;
          for (int j = 0; j < sg.len; ++j) dd[j] = src[j];
        } else if (ih < 0 || ih >= g.H) {
          for (int j = 0; j < sg.len; ++j) dd[j] = 0.0f;
        } else {  // a run crossing the left/right border: element by element
          for (int j = 0; j < sg.len; ++j) {
            const int64_t e = sg.off - g.c0 + j;  // channel offset from the run's first pixel
            const int64_t x = iw + e / g.C;
            dd[j] = (x >= 0 && x < g.W) ? base[(ih * g.W + x) * g.C + g.c0 + e % g.C] : 0.0f;
          }
        }
      }
      for (int j = w; j < width; ++j) d[j] = 0.0f;
      if (++ow == g.OW) {
        ow = 0;
        if (++oh == g.OH) {
          oh = 0;
          ++n;
        }
      }
    }
    dst += static_cast<int64_t>(width) * kc;
  }
}

// A transposed strided matrix (element (r, k) = data[k*ld + r]), e.g. dy as
// the channel-rows operand of backward-weights: per k, `width` contiguous
// values. Short inline copies instead of a memcpy call per k.
void pack_strided_t(const void* ctx, int64_t r0, int64_t rows, int64_t k0, int64_t kc, int width,
                    float* dst) {
  const auto* m = static_cast<const StridedMatrix*>(ctx);
  for (int64_t p = 0; p < rows; p += width) {
    const int w = static_cast<int>(std::min<int64_t>(width, rows - p));
    const float* src = m->data + k0 * m->ld + r0 + p;
    if (w == width) {
      for (int64_t k = 0; k < kc; ++k, src += m->ld, dst += width)
        for (int j = 0; j < width; ++j) dst[j] = src[j];
    } else {
      for (int64_t k = 0; k < kc; ++k, src += m->ld, dst += width) {
        for (int j = 0; j < w; ++j) dst[j] = src[j];
        for (int j = w; j < width; ++j) dst[j] = 0.0f;
      }
    }
  }
}

}  // namespace

PackSource strided_t_source(const StridedMatrix* m) { return PackSource{pack_strided_t, m}; }

PackSource patch_rows_source(const PatchGeom* g) { return PackSource{pack_rows, g}; }
PackSource patch_cols_source(const PatchGeom* g) { return PackSource{pack_cols, g}; }

}  // namespace conv_detail
}  // namespace cnnx
