// Internal: the int8 GEMM driver shared by qgemm and qconv2d_forward, and the
// per-call store parameters (checked once, shared by every tile).
#pragma once
#include <cstdint>
#include <vector>

#include "int8/qgemm_ukernel.h"

namespace cnnx {
namespace qdetail {

// The A operand (M x K uint8), in up to three forms; the driver uses the
// cheapest one the micro-kernel can read:
//   fill()     writes rows [r0, r0 + rows) in the packed depth layout
//              (K_pad bytes, the padding of each filter row zero), row i at
//              dst + i*ld (always available; the kernel then reads copies);
//   direct     row r readable in place at direct + r*direct_ld (a plain
//              matrix, or an NHWC image seen as pixels x channels);
//   pointers() for uint8 kernels, each row as `nseg` segments of seg_bytes
//              (a multiple of 4; nseg*seg_bytes == K_pad, bytes that pad a
//              filter row may be anything) read in place: for tile t of MR rows and
//              segment s, ptrs[(t*nseg + s)*MR + i] = row r0 + t*MR + i's
//              segment s. Segments crossing the image border are built in
//              `stage` (at least rows*K + 2*seg_bytes bytes); rows past
//              r0 + rows point at any readable segment.
struct ASource {
  void (*fill)(const void* ctx, int64_t r0, int64_t rows, uint8_t* dst, int64_t ld);
  const void* ctx;
  const uint8_t* direct = nullptr;
  int64_t direct_ld = 0;
  void (*pointers)(const void* ctx, int64_t r0, int64_t rows, int mr, const uint8_t** ptrs,
                   uint8_t* stage) = nullptr;
  int nseg = 0;
  int64_t seg_bytes = 0;
};

// Per-column store constants for every output column (all groups) and the
// clamp, from a checked QEpilogue.
struct StorePrep {
  std::vector<int32_t> zcomp;
  std::vector<float> mult, offs;
  float lo = 0, hi = 0;
  int32_t zy = 0;
  QOutput out = QOutput::f32;
  int32_t za = 0;
};

namespace {  // see qgemm_ukernel.h

// The tile arguments for columns starting at `col`.
inline QStoreArgs store_args_at(const StorePrep& s, int64_t col) {
  return QStoreArgs{
      s.zcomp.data() + col, s.mult.data() + col, s.offs.data() + col, s.lo, s.hi, s.zy, s.out};
}

inline size_t out_elem_bytes(QOutput o) { return o == QOutput::u8 ? 1 : 4; }

}  // namespace

// Checks ep (throws std::invalid_argument naming the argument) and builds the
// store constants for the packed weights' columns. with_zcomp = false leaves
// zcomp at 0 (kernels that subtract the zero point themselves).
StorePrep prepare_store(const QEpilogue& ep, const QPackedWeights::Impl& w, bool with_zcomp);

// C[:, col0 : col0 + n_group] of group `group` = store(A x B_group); c points
// at column 0 of row 0, ldc in elements.
void qgemm_run(int64_t M, const ASource& a, const QPackedWeights::Impl& w, int64_t group,
               const StorePrep& st, void* c, int64_t ldc, int threads);

// Throws unless `w` was packed for the active kernel.
void check_layout(const QPackedWeights& w);

}  // namespace qdetail
}  // namespace cnnx
