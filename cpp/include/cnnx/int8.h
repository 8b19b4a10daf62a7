// int8 inference kernels: uint8 activations x int8 weights with int32
// accumulation (VNNI's vpdpbusd semantics), a requantising store, and the
// uint8 pooling / add / quantize / dequantize that sit between layers.
//
// Quantisation convention (ONNX's QuantizeLinear/DequantizeLinear, the one
// ONNX Runtime's QLinearConv uses):
//   activations  real = scale * (q - zero_point), q uint8, zero_point 0..255
//                (asymmetric, one scale per tensor);
//   weights      real = scale[c] * q, q int8 (full range -128..127),
//                symmetric (zero point 0), one scale per output channel c.
//
// The GEMM and the convolution compute, for every output element,
//   acc = sum_k (x[k] - x_zero_point) * w[k][c]                 (exact int32)
// as sum_k x[k]*w[k][c] - x_zero_point * colsum[c], with colsum computed
// when the weights are packed. The store then applies, in float32,
//   v = fma(float(acc), mult[c], offs[c])
//   v = min(max(v, lo), hi)                   (activation clamp, see below)
// and writes
//   QOutput::f32: v, with mult[c] = x_scale*w_scale[c], offs[c] = bias[c];
//   QOutput::u8:  nearbyint(v) + y_zero_point (round half to even, as
//                 ONNX Runtime), with mult[c] = (x_scale*w_scale[c]) /
//                 y_scale and offs[c] = bias[c] / y_scale; lo/hi keep the
//                 result in [0, 255];
//   QOutput::s32: acc itself (no scaling; for tests and for callers that
//                 requantise elsewhere).
// relu clamps at real 0 (u8: at y_zero_point), relu6 also at real 6 (u8: at
// y_zero_point + nearbyint(6 / y_scale)). Every ISA computes exactly these
// float32 operations in this order, so results are bit-identical on every
// ISA and thread count. min/max follow minps/maxps (the second operand on
// equality), which std::min/std::max would not for signed zeros.
//
// The accumulation is exact (no intermediate saturation on any ISA: the
// AVX2 kernel widens to int16 and uses vpmaddwd instead of the saturating
// vpmaddubsw, so weights need not be limited to 7 bits). K is at most
// 65536, which keeps |acc| <= 255*128*K below 2^31.
//
// Bad arguments throw std::invalid_argument (ValueError from Python).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "cnnx/conv.h"
#include "cnnx/pool.h"

namespace cnnx {

// A uint8 tensor's quantisation: real = scale * (q - zero_point).
struct QuantParams {
  float scale = 1.0f;      // finite, > 0
  int32_t zero_point = 0;  // 0..255
};

enum class QActivation : int { none = 0, relu = 1, relu6 = 2 };
enum class QOutput : int { f32 = 0, u8 = 1, s32 = 2 };

// Everything the store needs besides the packed weights.
struct QEpilogue {
  QuantParams x;                // the uint8 input's quantisation
  const float* bias = nullptr;  // real units, one per output column/channel; may be null
  // A bias in accumulator units (real bias / (x_scale * w_scale[c]), rounded),
  // added to acc exactly before the scaling, as ONNX's QLinearConv and the
  // int32 biases of QDQ models do; may be null (and may be given with bias).
  const int32_t* bias_acc = nullptr;
  QActivation act = QActivation::none;
  QOutput out = QOutput::f32;
  QuantParams y;  // the output's quantisation (QOutput::u8 only)
};

// Largest reduction depth K (see the header comment).
constexpr int64_t kQGemmMaxK = 65536;

// Weights packed once into the micro-kernel's layout (k grouped for the dot
// product instruction, NR columns per panel), with their per-column sums and
// per-channel scales. Immutable and cheap to copy (shared storage). The
// layout belongs to the kernel active when packing (kernel_name()); running
// with another kernel active throws, so pack again after changing the ISA.
class QPackedWeights {
 public:
  struct Impl;
  QPackedWeights() = default;
  explicit QPackedWeights(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

  bool empty() const { return !impl_; }
  const char* kernel_name() const;
  int64_t k() const;                   // reduction depth per group (KH*KW*C_in/groups for a conv)
  int64_t n() const;                   // output columns in total (C_out for a conv)
  int64_t groups() const;              // 1 for a plain GEMM
  bool depthwise() const;              // packed for the depthwise kernel
  const float* scales() const;         // n() weight scales
  const int32_t* column_sums() const;  // n() sums of each column's int8 weights
  size_t packed_bytes() const;
  const Impl& impl() const { return *impl_; }

 private:
  std::shared_ptr<const Impl> impl_;
};

// A GEMM's B: w is K x N int8, row-major with row stride ldw; scales has N
// entries (finite, > 0).
QPackedWeights qgemm_pack_weights(int64_t K, int64_t N, const int8_t* w, int64_t ldw,
                                  const float* scales);

// A convolution's weights: w is HWIO (KH, KW, C_in/groups, C_out) int8, scales
// has C_out entries. Only the filter part of `s` (KH, KW, C_in, C_out,
// groups) is used; depthwise shapes get the depthwise layout.
QPackedWeights qconv2d_pack_weights(const Conv2dShape& s, const int8_t* w, const float* scales);

// C[M, N] = store(A[M, K] (uint8, row stride lda) x B). c points to float,
// uint8 or int32 elements by ep.out; ldc counts elements. bias has N entries.
// threads as in sgemm (0 = decide from the size).
void qgemm(int64_t M, const uint8_t* a, int64_t lda, const QPackedWeights& b, const QEpilogue& ep,
           void* c, int64_t ldc, int threads = 0);

// y (N, OH, OW, C_out) = store(conv(x, w)), x uint8 NHWC, padding with
// x's zero point (real 0). Pointwise stride-1 unpadded layers run as one GEMM
// on x in place; others pack image patches per block of output pixels;
// depthwise layers run their own direct kernel. bias has C_out entries.
void qconv2d_forward(const Conv2dShape& s, const uint8_t* x, const QPackedWeights& w,
                     const QEpilogue& ep, void* y, int threads = 0);
// "qgemm_1x1", "qgemm_patches" or "qdepthwise".
const char* qconv2d_algorithm(const Conv2dShape& s);

// Max pooling on uint8 (the output keeps x's quantisation; padding never
// wins). Shapes and windows as in pool.h.
void qmax_pool2d_forward(const PoolShape& s, const Pool2dParams& p, const uint8_t* x, uint8_t* y);
// Average pooling: with S the sum of a window's n valid pixels and d its
// divisor (count_include_pad ? window area within the padded input : n),
//   v = float(S - n*x.zero_point) * ((x.scale / y.scale) / float(d))
//   y = clamp(nearbyint(v) + y.zero_point, 0, 255).
// Padding counts as real 0 (q = x.zero_point).
void qavg_pool2d_forward(const PoolShape& s, const Pool2dParams& p, bool count_include_pad,
                         QuantParams xq, QuantParams yq, const uint8_t* x, uint8_t* y);

// y = requantised a + b for n elements each:
//   v = fma(float(a - za), sa/sy, float(b - zb) * (sb/sy))
//   y = clamp(nearbyint(v) + zy, lo, 255), lo = zy for relu, else 0.
void qadd(int64_t n, const uint8_t* a, QuantParams aq, const uint8_t* b, QuantParams bq,
          QuantParams yq, QActivation act, uint8_t* y);

// q = clamp(nearbyint(x / scale) + zero_point, 0, 255) (ONNX QuantizeLinear:
// a true division, ties to even). Throws std::invalid_argument if any x is
// NaN or infinite (y is then partly written).
void quantize_u8(int64_t n, const float* x, QuantParams q, uint8_t* y);
// x = float(q - zero_point) * scale.
void dequantize_u8(int64_t n, const uint8_t* q, QuantParams p, float* y);

// The GEMM micro-kernel that qgemm/qconv2d use now (from active_isa() and the
// CPU's VNNI flags), and an override by name for tests and benchmarks
// (nullptr or "" restores the default; false if it cannot run here).
const char* qgemm_kernel_name();
bool set_qgemm_kernel(const char* name);

// Peak of the int8 dot-product instruction the active kernel uses, in int8
// operations (2 per multiply-add) per second x 1e-9, on `threads` threads:
// independent vpdpbusd chains on zmm (AVX512-VNNI) or ymm (AVX-VNNI), or
// vpmaddwd + vpaddd (AVX2). 0 for the portable kernel.
double measure_qgemm_peak_gops(int threads, int64_t iters);

}  // namespace cnnx
