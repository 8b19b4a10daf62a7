// int8 convolution in NHWC with HWIO weights, on the int8 GEMM:
//   1x1, stride 1, no padding, one group -> the image is the A matrix
//                                           (pixels x channels), read in place;
//   otherwise                            -> each block of output pixels'
//                                           patches is staged as uint8 rows
//                                           (k = (kh, kw, c) like HWIO),
//                                           padding filled with x's zero point;
//   depthwise                            -> a direct kernel per output row.
// Staging is bounded by threads x block, never a whole-batch im2col.
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

struct Patches {
  const Conv2dShape* s;
  const uint8_t* x;
  int64_t group;
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
      uint8_t* dk = d + kh * s.KW * cg;
      if (ih < 0 || ih >= s.H) {
        std::memset(dk, p.za, s.KW * cg);
        continue;
      }
      const uint8_t* xrow = p.x + (n * s.H + ih) * s.W * s.C_in + c_off;
      if (runs && w_inside) {
        std::memcpy(dk, xrow + iw0 * s.C_in, s.KW * cg);
        continue;
      }
      for (int64_t kw = 0; kw < s.KW; ++kw) {
        const int64_t iw = iw0 + kw * s.dilation_w;
        if (iw < 0 || iw >= s.W)
          std::memset(dk + kw * cg, p.za, cg);
        else
          std::memcpy(dk + kw * cg, xrow + iw * s.C_in, cg);
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

qdetail::DepthwiseRow depthwise_row(const Conv2dShape& s) {
  if (s.C_out != s.C_in) return qdetail::qdepthwise_row_generic;
  switch (active_isa()) {
    case Isa::avx512: return qdetail::qdepthwise_row__avx512;
    case Isa::avx2: return qdetail::qdepthwise_row__avx2;
    default: return qdetail::qdepthwise_row_generic;
  }
}

void run_depthwise(const Conv2dShape& s, const uint8_t* x, const QPackedWeights::Impl& P,
                   const qdetail::StorePrep& st, void* y, int threads) {
  qdetail::DepthwiseArgs args{&s, x, reinterpret_cast<const int32_t*>(P.data.get()), st.za,
                               qdetail::store_args_at(st, 0), y};
  const qdetail::DepthwiseRow row = depthwise_row(s);
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
  if (P.C_in == 0)
    throw std::invalid_argument("w: packed for a matrix product, not a convolution");
  if (P.KH != s.KH || P.KW != s.KW || P.C_in != s.C_in || P.N != s.C_out ||
      P.groups != s.groups || P.depthwise != s.is_depthwise())
    throw std::invalid_argument(
        "w: packed for a (" + std::to_string(P.KH) + ", " + std::to_string(P.KW) + ", " +
        std::to_string(P.C_in / P.groups) + ", " + std::to_string(P.N) + ") filter with groups=" +
        std::to_string(P.groups) + ", which does not match this convolution");
  if (s.N == 0) return;
  const int64_t M = s.N * s.out_h() * s.out_w();
  if (P.depthwise) {
    const qdetail::StorePrep st = qdetail::prepare_store(ep, P, false);
    run_depthwise(s, x, P, st, y, threads);
    return;
  }
  const qdetail::StorePrep st = qdetail::prepare_store(ep, P, true);
  for (int64_t g = 0; g < s.groups; ++g) {
    Patches patches{&s, x, g, static_cast<uint8_t>(ep.x.zero_point)};
    qdetail::ASource src{fill_patches, &patches};
    if (is_pointwise(s)) {
      src.direct = x;
      src.direct_ld = s.C_in;
    }
    qdetail::qgemm_run(M, src, P, g, st, y, s.C_out, threads);
  }
}

}  // namespace cnnx
