// The contract between the int8 GEMM driver and its per-ISA micro-kernels,
// and the packed-weight layout they share.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "cnnx/int8.h"

namespace cnnx {

// Per-tile store parameters; the arrays are already offset to the tile's
// first column (see int8.h for the formula).
struct QStoreArgs {
  const int32_t* zcomp;  // x_zero_point * colsum[c]
  const float* mult;     // per column
  const float* offs;     // per column
  float lo, hi;          // clamp of v (f32: real units; u8: q - y_zero_point)
  int32_t zy;            // y_zero_point (u8)
  QOutput out;
};

// C[0:m, 0:n] (m <= MR, n <= NR) = store(A rows x B panel).
// a:  row pointers, a_stride (>= MR) per segment: a[s*a_stride + i] is row
//     i's segment s (a_stride is the configuration's mr, also for the
//     kernels with fewer rows used on ragged tiles), which
//     holds `seg_steps` words of 4 bytes (4 uint8 k values, or 2 int16 k
//     values for kernels with elem_bytes == 2). A row is one segment for a
//     plain matrix; for a convolution read in place, each filter row (or
//     tap) is a segment pointing into the image. Rows past m must still
//     point at readable memory.
// b:  one packed panel: for each step, NR columns x 4 bytes (that column's
//     k values of the step: 4 int8 or 2 int16), all segments in order.
// c:  float / uint8 / int32 elements by st.out, row stride ldc elements.
using QGemmUkernel = void (*)(int64_t seg_steps, int nseg, const uint8_t* const* a, int a_stride,
                              const uint8_t* b, void* c, int64_t ldc, int m, int n,
                              const QStoreArgs& st);

struct QGemmConfig {
  const char* name;
  int mr, nr;
  int elem_bytes;  // 1: A uint8 and B int8, 4 k per step (vpdpbusd);
                   // 2: A and B widened to int16, 2 k per step (vpmaddwd)
  QGemmUkernel ukernel;
  // Optional, mr entries: rows[m - 1] computes exactly m rows (the same
  // kernel with MR = m), for the last tile of a ragged M: a batch-1 7x7
  // layer has M = 49, and a full 8-row tile would waste 1/8 of its work.
  const QGemmUkernel* rows = nullptr;
  // Copies of each column in a panel step: 2 when one vector holds the nr
  // columns of two rows (a step is then nr*4*dup bytes, the columns twice).
  int dup = 1;
  // Kernels for narrow layers, chosen when the weights are packed: [0] for
  // at most narrow[0]->nr columns per group, [1] for at most narrow[1]->nr
  // (a LeNet layer has 8 or 16 output channels, where 32-column tiles waste
  // 3/4 or 1/2 of their lanes). Null: this kernel for every width.
  const QGemmConfig* narrow[2] = {nullptr, nullptr};
};

// Constant data, defined in each ISA's file (reading it runs no ISA code).
extern const QGemmConfig kQGemmGeneric;
extern const QGemmConfig kQGemmAvx2;
extern const QGemmConfig kQGemmAvxVnni;
// The AVX-VNNI kernel's code compiled with the EVEX (AVX512-VNNI + VL) form
// of the same ymm instruction: lets an AVX-512 VNNI CPU test the AVX-VNNI
// kernel's logic. Never chosen by default.
extern const QGemmConfig kQGemmAvxVnniEvex;
extern const QGemmConfig kQGemmAvx512Vnni;
extern const QGemmConfig kQGemmAvx512VnniVariants[];
extern const int kQGemmAvx512VnniVariantCount;
// AVX512-VNNI kernels for narrow layers (u8s8_gemm_narrow__avx512vnni.cpp):
// 16 rows x 16 columns, and 16 rows x 8 columns with two rows per vector.
extern const QGemmConfig kQGemmAvx512VnniN16;
extern const QGemmConfig kQGemmAvx512VnniN8;

// The kernel for the active ISA level (or the override).
const QGemmConfig& qgemm_config();
// Whether a kernel can run on this CPU at all.
bool qgemm_config_runs_here(const QGemmConfig& g);

// Helpers in headers shared by files built for different ISAs live in an
// unnamed namespace: each file keeps its own copy, so the linker can never
// hand one ISA's body (say, with AVX-512 moves) to another ISA's caller.
namespace {

// K values per step of a kernel (4 for int8 elements, 2 for int16).
inline int qgemm_k_per_step(const QGemmConfig& g) { return 4 / g.elem_bytes; }

}  // namespace

}  // namespace cnnx

// The storage behind QPackedWeights.
struct cnnx::QPackedWeights::Impl {
  const QGemmConfig* config = nullptr;  // layout owner (GEMM layouts)
  const QGemmConfig* family = nullptr;  // the kernel active when packing (config or
                                        // one of its narrow kernels)
  int64_t K = 0;                        // depth per group
  // The packed depth: K split into row_segs rows of seg_len values (a
  // convolution's filter rows, KW*C_in/groups each; one row for a GEMM),
  // each padded with zero weights to seg_pad, a multiple of 4, so that a
  // row never shares a 4-byte step with the next (the kernels can then read
  // each filter row straight from the image).
  int64_t seg_len = 0, seg_pad = 0, row_segs = 1;
  int64_t K_pad = 0;  // row_segs * seg_pad
  int64_t N = 0;      // columns in total (all groups)
  int64_t groups = 1;
  int64_t n_group = 0;  // N / groups
  int64_t panels = 0;   // ceil(n_group / NR) per group
  int64_t panel_bytes = 0;
  bool depthwise = false;
  int64_t KH = 1, KW = 1, C_in = 0;  // conv filter shape (0 for plain GEMM)
  std::unique_ptr<uint8_t, void (*)(void*)> data{nullptr, nullptr};
  size_t bytes = 0;
  std::unique_ptr<int32_t[]> colsum;
  std::unique_ptr<float[]> scale;
  // GEMM layouts: panel p of group g at data + (g*panels + p)*panel_bytes.
  // Depthwise layout: (KH*KW, N) int32 lanes, each the int16 weight in its
  // low half and zero in its high half (vpmaddwd then multiplies only the
  // low halves).
  // Depthwise, second layout for vpdpbusd (qdepthwise__avx512vnni.cpp): for
  // each block of 64 channels and group of 4 taps, 4 vectors of 64 bytes in
  // the order that unpacking 4 taps' bytes produces (see there).
  std::unique_ptr<uint8_t, void (*)(void*)> dw4{nullptr, nullptr};
};
