// int8 convolution in NHWC with HWIO weights, on the int8 GEMM:
//   1x1, stride 1, no padding, one group -> the image is the A matrix
//                                           (pixels x channels), read in place;
//   otherwise                            -> patch rows (k = (kh, kw, c) like
//                                           HWIO) read in place as segments
//                                           (a filter row, or a tap) through
//                                           per-row pointers, with padding
//                                           segments of x's zero point; only
//                                           border segments are built. Kernels
//                                           that need int16 rows (AVX2), or
//                                           segments that are not a multiple
//                                           of 4 bytes, get staged patch rows;
//   depthwise                            -> a direct kernel per output row.
// Copies are bounded by threads x block, never a whole-batch im2col.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <stdexcept>
#include <string>

#include "cnnx/cpu.h"
#include "cnnx/threading.h"
#include "int8/qdepthwise.h"
#include "int8/qgemm_driver.h"

#ifdef CNNX_HAVE_OPENMP
#include <omp.h>
#endif

namespace cnnx {
namespace {

bool is_pointwise(const Conv2dShape& s) {
  return s.KH == 1 && s.KW == 1 && s.stride_h == 1 && s.stride_w == 1 && s.pad_top == 0 &&
         s.pad_bottom == 0 && s.pad_left == 0 && s.pad_right == 0 && s.groups == 1;
}

// Short runs (a tap's channels, a filter row) are copied with fixed-size
// 16-byte moves, the last one overlapping, instead of a memcpy call each:
// the calls cost as much as the copying at 64-256 bytes. Neither range is
// touched outside [0, n).
inline void copy_run(uint8_t* d, const uint8_t* s, int64_t n) {
  if (n >= 16) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) std::memcpy(d + i, s + i, 16);
    if (i < n) std::memcpy(d + n - 16, s + n - 16, 16);
  } else if (n >= 8) {
    std::memcpy(d, s, 8);
    std::memcpy(d + n - 8, s + n - 8, 8);
  } else if (n >= 4) {
    std::memcpy(d, s, 4);
    std::memcpy(d + n - 4, s + n - 4, 4);
  } else {
    for (int64_t i = 0; i < n; ++i) d[i] = s[i];
  }
}

inline void fill_run(uint8_t* d, uint8_t v, int64_t n) {
  uint8_t block[16];
  std::memset(block, v, 16);
  if (n >= 16) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) std::memcpy(d + i, block, 16);
    if (i < n) std::memcpy(d + n - 16, block, 16);
  } else {
    for (int64_t i = 0; i < n; ++i) d[i] = v;
  }
}

struct Patches {
  const Conv2dShape* s;
  const uint8_t* x;
  const uint8_t* x_end;  // one past the image batch
  int64_t group;
  int64_t seg_pad;  // packed length of a filter row (QPackedWeights::Impl)
  uint8_t za;
};

// Rows are output pixels (n, oh, ow) in order; row r gets its patch.
void fill_patches(const void* ctx, int64_t r0, int64_t rows, uint8_t* dst, int64_t ld) {
  const Patches& p = *static_cast<const Patches*>(ctx);
  const Conv2dShape& s = *p.s;
  const int64_t OH = s.out_h(), OW = s.out_w();
  const int64_t cg = s.cin_per_group(), c_off = p.group * cg;
  // A whole filter row (KW taps) is one contiguous run of the image when
  // taps are adjacent pixels and the group spans every channel.
  const bool runs = s.dilation_w == 1 && s.groups == 1;
  int64_t r = r0;
  int64_t n = r / (OH * OW), oh = (r / OW) % OH, ow = r % OW;
  for (int64_t i = 0; i < rows; ++i, ++r) {
    uint8_t* d = dst + i * ld;
    const int64_t ih0 = oh * s.stride_h - s.pad_top, iw0 = ow * s.stride_w - s.pad_left;
    const bool w_inside = iw0 >= 0 && iw0 + (s.KW - 1) * s.dilation_w < s.W;
    for (int64_t kh = 0; kh < s.KH; ++kh) {
      const int64_t ih = ih0 + kh * s.dilation_h;
      uint8_t* dk = d + kh * p.seg_pad;
      for (int64_t k = s.KW * cg; k < p.seg_pad; ++k) dk[k] = 0;
      if (ih < 0 || ih >= s.H) {
        fill_run(dk, p.za, s.KW * cg);
        continue;
      }
      const uint8_t* xrow = p.x + (n * s.H + ih) * s.W * s.C_in + c_off;
      if (runs && w_inside) {
        copy_run(dk, xrow + iw0 * s.C_in, s.KW * cg);
        continue;
      }
      for (int64_t kw = 0; kw < s.KW; ++kw) {
        const int64_t iw = iw0 + kw * s.dilation_w;
        if (iw < 0 || iw >= s.W)
          fill_run(dk + kw * cg, p.za, cg);
        else
          copy_run(dk + kw * cg, xrow + iw * s.C_in, cg);
      }
    }
    if (++ow == OW) {
      ow = 0;
      if (++oh == OH) {
        oh = 0;
        ++n;
      }
    }
  }
}

// Segments of a patch row read in place: a whole filter row (KW adjacent
// taps, all channels, read on to its packed length seg_pad: the extra bytes
// belong to the next pixel and meet zero weights) when taps are adjacent
// pixels and one group spans every channel; else one tap's channels of the
// group, when that is a multiple of 4 bytes; else none (staged rows).
struct Segments {
  int nseg;
  int64_t bytes;
  bool merged;  // one segment per filter row
};

Segments segments_of(const Conv2dShape& s, int64_t seg_pad) {
  if (s.dilation_w == 1 && s.groups == 1) return {static_cast<int>(s.KH), seg_pad, true};
  if (s.cin_per_group() % 4 == 0) return {static_cast<int>(s.KH * s.KW), s.cin_per_group(), false};
  return {0, 0, false};
}

// The ASource::pointers form of Patches (see qgemm_driver.h).
void patch_pointers(const void* ctx, int64_t r0, int64_t rows, int mr, const uint8_t** ptrs,
                    uint8_t* stage) {
  const Patches& p = *static_cast<const Patches*>(ctx);
  const Conv2dShape& s = *p.s;
  const Segments sg = segments_of(s, p.seg_pad);
  const int nseg = sg.nseg;
  const int64_t OH = s.out_h(), OW = s.out_w();
  const int64_t cg = s.cin_per_group(), c_off = p.group * cg;
  uint8_t* za_seg = stage;  // a whole segment of padding (real 0)
  fill_run(za_seg, p.za, sg.bytes);
  uint8_t* next = stage + sg.bytes;  // border segments, built on demand
  const int64_t row_step = s.dilation_h * s.W * s.C_in, tap_step = s.dilation_w * s.C_in;
  int64_t n = r0 / (OH * OW), oh = (r0 / OW) % OH, ow = r0 % OW;
  auto advance = [&](int64_t k) {  // ow += k, k <= OW - ow
    ow += k;
    if (ow == OW) {
      ow = 0;
      if (++oh == OH) {
        oh = 0;
        ++n;
      }
    }
  };
  // Merged segments: the interior columns [run_lo, run_hi) of the current
  // output row (run_n, run_oh), whose segments are the image at run_off +
  // ow * col_step (+ seg * row_step), found once per output row; a run of
  // such pixels within a tile is written segment by segment, lane after
  // lane. Small layers (LeNet's 5x5 on 3 channels: 5 segments of 16 bytes a
  // pixel) spent more time finding each pixel's pointers than multiplying.
  const int64_t col_step = s.stride_w * s.C_in;
  int64_t run_n = -1, run_oh = -1, run_lo = 0, run_hi = 0, run_off = 0;
  auto interior_run = [&]() -> int64_t {  // pixels from (n, oh, ow) on that read in place
    if (n != run_n || oh != run_oh) {
      run_n = n;
      run_oh = oh;
      run_lo = run_hi = 0;
      const int64_t ih = oh * s.stride_h - s.pad_top;
      if (ih >= 0 && ih + (s.KH - 1) * s.dilation_h < s.H && s.W - s.KW + s.pad_left >= 0) {
        run_off = ((n * s.H + ih) * s.W - s.pad_left) * s.C_in + c_off;
        run_lo = std::min<int64_t>(OW, (s.pad_left + s.stride_w - 1) / s.stride_w);
        run_hi = std::min<int64_t>(OW, (s.W - s.KW + s.pad_left) / s.stride_w + 1);
        // a pixel's last segment must end inside the batch (it reads seg_pad bytes)
        const int64_t room = (p.x_end - p.x) - run_off - row_step * (s.KH - 1) - sg.bytes;
        run_hi = room < 0 ? 0 : std::min(run_hi, room / col_step + 1);
      }
    }
    return ow >= run_lo && ow < run_hi ? run_hi - ow : 0;
  };
  // One pixel, in general: border pixels, taps, reads near the batch's end.
  auto one_pixel = [&](const uint8_t** tile) {
    const int64_t ih0 = oh * s.stride_h - s.pad_top, iw0 = ow * s.stride_w - s.pad_left;
    // Interior pixels: every segment inside the image, each one filter row
    // (or tap) further on.
    if (ih0 >= 0 && ih0 + (s.KH - 1) * s.dilation_h < s.H && iw0 >= 0 &&
        iw0 + (s.KW - 1) * s.dilation_w < s.W) {
      const uint8_t* base = p.x + ((n * s.H + ih0) * s.W + iw0) * s.C_in + c_off;
      if (sg.merged) {
        if (base + row_step * (s.KH - 1) + sg.bytes <= p.x_end) {
          for (int seg = 0; seg < nseg; ++seg) tile[seg * mr] = base + seg * row_step;
          return;
        }
      } else {
        for (int64_t kh = 0, seg = 0; kh < s.KH; ++kh)
          for (int64_t kw = 0; kw < s.KW; ++kw, ++seg)
            tile[seg * mr] = base + kh * row_step + kw * tap_step;
        return;
      }
    }
    for (int seg = 0; seg < nseg; ++seg) {
      const int64_t kh = sg.merged ? seg : seg / s.KW;
      const int64_t ih = ih0 + kh * s.dilation_h;
      if (ih < 0 || ih >= s.H) {
        tile[seg * mr] = za_seg;
        continue;
      }
      const uint8_t* xrow = p.x + (n * s.H + ih) * s.W * s.C_in + c_off;
      if (!sg.merged) {
        const int64_t iw = iw0 + (seg % s.KW) * s.dilation_w;
        tile[seg * mr] = (iw < 0 || iw >= s.W) ? za_seg : xrow + iw * s.C_in;
      } else if (iw0 >= 0 && iw0 + s.KW - 1 < s.W && xrow + iw0 * s.C_in + sg.bytes <= p.x_end) {
        tile[seg * mr] = xrow + iw0 * s.C_in;
      } else {  // crosses the border (or would read past the batch's end)
        for (int64_t k = s.KW * cg; k < sg.bytes; ++k) next[k] = 0;
        for (int64_t kw = 0; kw < s.KW; ++kw) {
          const int64_t iw = iw0 + kw;
          if (iw < 0 || iw >= s.W)
            fill_run(next + kw * cg, p.za, cg);
          else
            copy_run(next + kw * cg, xrow + iw * s.C_in, cg);
        }
        tile[seg * mr] = next;
        next += sg.bytes;
      }
    }
  };
  for (int64_t t0 = 0; t0 < rows; t0 += mr) {
    const uint8_t** tp = ptrs + (t0 / mr) * nseg * mr;  // this tile's slots
    int64_t lane = 0;
    const int64_t in_tile = std::min<int64_t>(mr, rows - t0);
    while (lane < in_tile) {
      const int64_t run = sg.merged ? std::min(interior_run(), in_tile - lane) : 0;
      if (run > 0) {
        const uint8_t* b = p.x + run_off + ow * col_step;
        for (int seg = 0; seg < nseg; ++seg) {
          const uint8_t** dst = tp + seg * mr + lane;
          const uint8_t* src = b + seg * row_step;
          for (int64_t j = 0; j < run; ++j) dst[j] = src + j * col_step;
        }
        lane += run;
        advance(run);
      } else {
        one_pixel(tp + lane);
        ++lane;
        advance(1);
      }
    }
    for (; lane < mr; ++lane)  // rows past the end: any readable segment
      for (int seg = 0; seg < nseg; ++seg) tp[seg * mr + lane] = za_seg;
  }
}

qdetail::DepthwiseRow depthwise_row(const Conv2dShape& s) {
  if (s.C_out != s.C_in) return qdetail::qdepthwise_row_generic;
  switch (active_isa()) {
    case Isa::avx512:
      return cpu_has_avx512_vnni() ? qdetail::qdepthwise_row__avx512vnni
                                   : qdetail::qdepthwise_row__avx512;
    case Isa::avx2: return qdetail::qdepthwise_row__avx2;
    default: return qdetail::qdepthwise_row_generic;
  }
}

void run_depthwise(const Conv2dShape& s, const uint8_t* x, const QPackedWeights::Impl& P,
                   const QEpilogue& ep, void* y, int threads) {
  const qdetail::DepthwiseRow row = depthwise_row(s);
  const qdetail::StorePrep st =
      qdetail::prepare_store(ep, P, row == qdetail::qdepthwise_row__avx512vnni);
  qdetail::DepthwiseArgs args{&s,
                              x,
                              reinterpret_cast<const int32_t*>(P.data.get()),
                              P.dw4.get(),
                              st.za,
                              qdetail::store_args_at(st, 0),
                              y};
  const int64_t OH = s.out_h(), rows = s.N * OH;
  const double ops = 2.0 * static_cast<double>(s.output_size()) * s.KH * s.KW;
  int nt = threads > 0 ? std::min(threads, get_num_threads()) : threads_for_flops(ops);
  nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(nt, rows)));
#ifdef CNNX_HAVE_OPENMP
  if (nt > 1) {
    std::atomic<int64_t> next{0};
#pragma omp parallel num_threads(nt)
    for (;;) {
      const int64_t r = next.fetch_add(1, std::memory_order_relaxed);
      if (r >= rows) break;
      row(args, r / OH, r % OH);
    }
    return;
  }
#endif
  for (int64_t r = 0; r < rows; ++r) row(args, r / OH, r % OH);
}

}  // namespace

const char* qconv2d_algorithm(const Conv2dShape& s) {
  if (s.is_depthwise()) return "qdepthwise";
  return is_pointwise(s) ? "qgemm_1x1" : "qgemm_patches";
}

void qconv2d_forward(const Conv2dShape& s, const uint8_t* x, const QPackedWeights& w,
                     const QEpilogue& ep, void* y, int threads) {
  const char* msg = conv2d_check(s);
  if (msg[0]) throw std::invalid_argument(msg);
  qdetail::check_layout(w);
  const auto& P = w.impl();
  if (P.C_in == 0) throw std::invalid_argument("w: packed for a matrix product, not a convolution");
  if (P.KH != s.KH || P.KW != s.KW || P.C_in != s.C_in || P.N != s.C_out || P.groups != s.groups ||
      P.depthwise != s.is_depthwise())
    throw std::invalid_argument("w: packed for a (" + std::to_string(P.KH) + ", " +
                                std::to_string(P.KW) + ", " + std::to_string(P.C_in / P.groups) +
                                ", " + std::to_string(P.N) +
                                ") filter with groups=" + std::to_string(P.groups) +
                                ", which does not match this convolution");
  if (s.N == 0) return;
  const int64_t M = s.N * s.out_h() * s.out_w();
  if (P.depthwise) {
    run_depthwise(s, x, P, ep, y, threads);
    return;
  }
  const qdetail::StorePrep st = qdetail::prepare_store(ep, P, true);
  for (int64_t g = 0; g < s.groups; ++g) {
    Patches patches{&s, x, x + s.input_size(), g, P.seg_pad, static_cast<uint8_t>(ep.x.zero_point)};
    qdetail::ASource src{fill_patches, &patches};
    const Segments sg = segments_of(s, P.seg_pad);
    if (is_pointwise(s)) {
      src.direct = x;
      src.direct_ld = s.C_in;
    } else if (sg.nseg > 0) {
      src.pointers = patch_pointers;
      src.nseg = sg.nseg;
      src.seg_bytes = sg.bytes;
    }
    qdetail::qgemm_run(M, src, P, g, st, y, s.C_out, threads);
  }
}

}  // namespace cnnx
