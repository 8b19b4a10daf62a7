// Shared internals of the convolution kernels (not a public header).
#pragma once
#include <cstdint>

#include "cnnx/conv.h"
#include "cnnx/cpu.h"
#include "cnnx/gemm.h"

namespace cnnx {
namespace conv_detail {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Where the patches of a (possibly virtual) convolution come from. The image
// is NHWC [*, H, W, C]; a patch of output pixel m = (n, oh, ow) at depth
// k = (kh, kw, ci) is image[n, oh*sh - pt + kh*dh, ow*sw - pl + kw*dw, c0 + ci]
// (zero outside the image). Pads may be negative (backward-data reuses this
// with the roles of the image and the output grid swapped).
struct PatchGeom {
  const float* x;
  int64_t H, W, C;  // image dims; C is the pixel stride
  int64_t c0, Cg;   // first channel and channels per tap
  int64_t OH, OW;   // output grid
  int64_t KH, KW, sh, sw, dh, dw, pt, pl;
  int64_t p0;  // global index of pixel 0 of this source (chunking)
  int64_t depth() const { return KH * KW * Cg; }
  // The patch matrix is the image itself (1x1, stride 1, unpadded).
  bool is_identity() const {
    return KH == 1 && KW == 1 && sh == 1 && sw == 1 && pt == 0 && pl == 0 && OH == H && OW == W;
  }
};

// Patch matrix P[pixel, k] as a GEMM operand whose rows are pixels and depth
// is k (the A operand of the forward GEMM, or B of its transpose).
PackSource patch_rows_source(const PatchGeom* g);
// pack_rows with 16x16 register transposes (AVX-512 CPUs, width <= 16).
void pack_rows_avx512(const PatchGeom& g, int64_t r0, int64_t rows, int64_t k0, int64_t kc,
                      int width, float* dst);
// The same matrix transposed: rows are k, depth is pixels (backward-weights).
PackSource patch_cols_source(const PatchGeom* g);

// Like strided_source for a transposed matrix, tuned for short rows.
PackSource strided_t_source(const StridedMatrix* m);

// Fraction of a micro-tile grid doing useful work for an M x N product.
double tile_efficiency(int64_t M, int64_t N);

// out[p, j] = act(sum_k P[p, k] * wmat[k, j] + bias[j]) for p < g.OH*g.OW*n_img
// (all P pixels of the geometry), j < Nout. wmat rows have stride ldw;
// out rows have stride ldo. Picks the orientation (out or out^T) by tile
// efficiency; threads as in sgemm.
void implicit_gemm(const PatchGeom& g, int64_t P, int64_t Nout, const float* wmat, int64_t ldw,
                   const float* bias, Activation act, float* out, int64_t ldo);

// Indirect-GEMM convolution (conv_igemm*.cpp): per-pixel pointers into the
// image, weights packed as [Nout/CW blocks][K][CW] (zero-padded channels).
struct IgemmProblem {
  PatchGeom g;
  int64_t K, Nout;
  const float* wp;
  const float* bias;
  Activation act;
  float* out;
  int64_t ldo;
  bool merge_kw;  // one run per filter row: kw taps adjacent (dw == 1, Cg == C)
};
using IgemmTilesFn = void (*)(const IgemmProblem&, int64_t m_begin, int64_t m_end, int64_t cb,
                              float* scratch);
struct IgemmKernel {
  IgemmTilesFn fn;  // null: not available on this ISA
  int R, CW;        // pixels x channels per register tile
};
IgemmKernel igemm_kernel_avx512(int64_t nout);
IgemmKernel igemm_kernel_avx2(int64_t nout);
// Whether igemm runs on this CPU / ISA level.
bool igemm_available();
// Whether implicit_gemm hands this product to igemm.
bool igemm_preferred(const PatchGeom& g, int64_t Nout);
// Same contract as implicit_gemm (p0 of g must be 0).
void igemm(const PatchGeom& g, int64_t P, int64_t Nout, const float* wmat, int64_t ldw,
           const float* bias, Activation act, float* out, int64_t ldo);

// Winograd F(4x4, 3x3) for 3x3 and F(2x2, 5x5) for 5x5 stride-1 undilated
// convolutions (conv_winograd*.cpp). U holds the transformed weights
// [36][ncb][Cin][CW] (zero-padded channels).
struct WinogradProblem {
  const float* x;
  int64_t H, W, C, c0, Cin;  // image (C = pixel stride), channels c0..c0+Cin
  int64_t OH, OW, pt, pl;    // output grid and top/left padding (may be negative)
  int64_t TH, TW, T;         // MxM output tiles per column / row, in all
  int64_t Cout, ncb;         // output channels, blocks of CW
  const float* U;
  int64_t sU;  // distance between U's 36 matrices
  const float* bias;
  Activation act;
  float* out;
  int64_t ldo;
  // Optional, forward output transform only: out = act(y * scale + bias +
  // res), scale per channel, res in out's layout (ConvPacked's epilogue).
  const float* scale = nullptr;
  const float* res = nullptr;
};
// Tiles [t_begin, t_end) x channel blocks [cb_begin, cb_end). The functions
// return false (and stop) on a NaN or infinite input or weight.
using WinogradTilesFn = bool (*)(const WinogradProblem&, int64_t t_begin, int64_t t_end,
                                 int64_t cb_begin, int64_t cb_end, float* scratch);
using WinogradWeightsFn = bool (*)(const float* wmat, int64_t ldw, int64_t Cin, int64_t Cout,
                                   int64_t ncb, float* U, int64_t ci_begin, int64_t ci_end,
                                   int64_t co_off, int64_t ldu, int64_t sU);
using WinogradInputFn = bool (*)(const WinogradProblem&, int64_t t_begin, int64_t t_end,
                                 int64_t row0, int64_t sV, float* Vb);
// One output-channel block in the weight-stationary form: Vall holds every
// tile's transformed input ([36][TBp][Cin], matrix stride sV); scratch holds
// 36 * (wino_estride(min(Cin, 128) * CW) + wino_estride(TBp * CW)) floats.
using WinogradWsFn = bool (*)(const WinogradProblem&, const float* wmat, int64_t ldw,
                              const float* Vall, int64_t TBp, int64_t sV, int64_t cb,
                              float* scratch);
struct WinogradKernel {
  WinogradTilesFn fn;  // null: not available on this ISA
  WinogradWeightsFn weights;
  WinogradInputFn input;
  WinogradWsFn ws;
  int R, CW;  // tiles x channels per register tile
};
// ks: filter size 3 (F(4x4,3x3)) or 5 (F(2x2,5x5)); cin, nout: channels.
WinogradKernel winograd_kernel_avx512(int ks, int64_t cin, int64_t nout);
void wino_zero_rows(float* Vb, int64_t sV, int64_t Cin, int64_t r_begin, int64_t r_end);
// Distance between the 36 matrices of a Winograd buffer of n floats each.
inline int64_t wino_estride(int64_t n) { return (n + 15) / 16 * 16 + 48; }
WinogradKernel winograd_kernel_avx2(int ks, int64_t cin, int64_t nout);
// Whether implicit_gemm hands this product to the Winograd path.
bool winograd_preferred(const PatchGeom& g, int64_t P, int64_t Nout);
// Same contract as implicit_gemm. Returns false, with out partly written,
// when an input or weight is NaN or infinite: Winograd's transforms would
// spread it over a whole tile, so the caller computes the product directly.
bool winograd(const PatchGeom& g, int64_t P, int64_t Nout, const float* wmat, int64_t ldw,
              const float* bias, Activation act, float* out, int64_t ldo);
// The same in two steps, for weights transformed once (ConvPacked): the
// transformed weights U ([36][ncb][Cin][CW], matrix stride *sU) of a ks x ks
// layer with cin inputs and nout outputs take winograd_u_floats() floats;
// winograd_pack fills them (false on NaN/inf weights, threads as in sgemm);
// winograd_run_packed computes part `part` of `parts` of the output (parts
// == 0: all of it, on threads of its own), false on NaN/inf inputs.
// isa: the level whose kernels transform and read U (fixed when packing).
int64_t winograd_u_floats(Isa isa, int ks, int64_t cin, int64_t nout, int64_t* sU);
bool winograd_pack(Isa isa, int ks, int64_t cin, int64_t nout, const float* wmat, int64_t ldw,
                   float* U);
bool winograd_run_packed(Isa isa, const PatchGeom& g, int64_t P, int64_t Nout, const float* U,
                         int64_t sU, const float* bias, const float* scale, const float* res,
                         Activation act, float* out, int64_t ldo, int part, int parts);

// Direct convolution vectorised over output pixels for very few input
// channels (conv_planar*.cpp, AVX-512). Same contract as implicit_gemm.
bool planar_preferred(const PatchGeom& g, int64_t P, int64_t Nout);
void planar_conv_avx512(const PatchGeom& g, int64_t P, int64_t Nout, const float* wmat, int64_t ldw,
                        const float* bias, Activation act, float* out, int64_t ldo);

// The same for <= 4 output channels at stride 1 over "flat" padded rows
// (conv_planar_flat*): the dx of RGB layers. AVX2 and AVX-512.
bool planar_flat_preferred(const PatchGeom& g, int64_t P, int64_t Nout);
void planar_flat(const PatchGeom& g, int64_t P, int64_t Nout, const float* wmat, int64_t ldw,
                 const float* bias, Activation act, float* out, int64_t ldo);
void planar_flat_avx512(const PatchGeom& g, int64_t P, int64_t Nout, const float* wmat, int64_t ldw,
                        const float* bias, Activation act, float* out, int64_t ldo);
void planar_flat_avx2(const PatchGeom& g, int64_t P, int64_t Nout, const float* wmat, int64_t ldw,
                      const float* bias, Activation act, float* out, int64_t ldo);

// Backward-weights for <= 4 input channels and 16..64 output channels per
// group (conv_wgrad_planar__avx512.cpp): dy rows as vectors, patch values
// broadcast from a padded copy of the image. Writes dw and db (if not null).
bool wgrad_planar_preferred(const Conv2dShape& s);
void wgrad_planar_avx512(const Conv2dShape& s, const float* dy, const float* x, float* dw,
                         float* db);

// dst[c][r] = src[r][c] (rows x cols, row strides lds / ldd), AVX-512.
void transpose_avx512(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst,
                      int64_t ldd);

// Winograd backward-weights for 3x3 stride-1 layers (conv_winograd_wgrad*):
// per-ISA pieces (see conv_winograd_wgrad_impl.h).
struct WinogradWgradKernel {
  WinogradInputFn input;  // forward input transform, 4x4 output tiles
  bool (*dy)(const WinogradProblem&, const float* dy, int64_t ldd, int64_t t_begin, int64_t t_end,
             int64_t row0, int64_t sY, int64_t ldy, float* Yb);
  void (*gemms)(const float* Vb, int64_t sV, int64_t Cin, int64_t ci0, int64_t nrows,
                const float* Yb, int64_t sY, int64_t ldy, int64_t tiles, float* Mb, int64_t sM,
                bool accumulate);
  void (*output)(const float* Mb, int64_t sM, int64_t ldm, int64_t Cin, int64_t Cout, int64_t ci0,
                 int64_t ci1, float* dw, int64_t ldw);
  int R, CW;
};
WinogradWgradKernel winograd_wgrad_kernel_avx512();
WinogradWgradKernel winograd_wgrad_kernel_avx2();
bool winograd_wgrad_preferred(const Conv2dShape& s);
// dw (not db) by Winograd; false (dw partly written) on NaN/inf in x or dy.
bool winograd_wgrad(const Conv2dShape& s, const float* dy, const float* x, float* dw);

// Winograd backward-data for 5x5 stride-1 layers, the adjoint of the forward
// F(2x2, 5x5) over dy's 2x2 tiles (conv_winograd_dx_impl.h). pb: x/H/W/Cin
// describe dx (out = dx), OH/OW/Cout and TH/TW describe dy's tiles, U the
// forward weight transform with dx-channel lanes, read from the flipped,
// transposed filter by weights (FLIP).
struct WinogradDxKernel {
  bool (*images)(const WinogradProblem&, const float* dy, int64_t n_begin, int64_t n_end,
                 float* scratch);
  WinogradWeightsFn weights;
  int R, CW;
};
WinogradDxKernel winograd_dx_kernel_avx512(int64_t cin, int64_t cout);
WinogradDxKernel winograd_dx_kernel_avx2(int64_t cin, int64_t cout);
// Whether conv2d_backward_data uses it, and the call (false on NaN/inf; wf is
// the flipped, transposed filter [KH][KW][C_out][C_in]).
bool winograd_dx_preferred(const Conv2dShape& s);
bool winograd_dx(const Conv2dShape& s, const float* dy, const float* wf, float* dx);

// Direct backward-weights for narrow layers (conv_wgrad_direct*.cpp):
// dwT[co][k] += sum_p dy[p][co0 + co] * patch[p][k], co < Nout, p in a range.
struct WgradProblem {
  PatchGeom g;        // p0 == 0; pixel p is global
  int64_t Nout, co0;  // channels of this group, and their offset in dy
  const float* dy;
  int64_t ldy;
  const float* x_end;  // one past the image buffer (bounds for vector reads)
  const float* zeros;  // at least V zeros
  bool merge_kw;
};
using WgradTilesFn = void (*)(const WgradProblem&, int64_t p_begin, int64_t p_end, float* dwT,
                              float* scratch);
struct WgradKernel {
  WgradTilesFn fn;
  int V, NB;  // scratch needs NB*V floats
};
WgradKernel wgrad_direct_kernel_avx512();
WgradKernel wgrad_direct_kernel_avx2();

// A 1x1 stride-1 unpadded ungrouped convolution with at most 16 outputs
// (AVX-512): pixels [p0, p1) of y = x . w with the direct kernel's epilogue
// (x: rows of ldx floats, K of them read; w: K rows of ldw floats, cog read;
// y and ep.res: rows of ldy floats).
struct DirectEpi;
void conv1x1_narrow_avx512(const float* x, int64_t ldx, int64_t K, const float* w, int64_t ldw,
                           int64_t cog, const DirectEpi& ep, float* y, int64_t ldy, int64_t p0,
                           int64_t p1);
inline bool conv1x1_narrow_ok(const Conv2dShape& s) {
  return s.KH == 1 && s.KW == 1 && s.stride_h == 1 && s.stride_w == 1 && s.groups == 1 &&
         !s.pad_top && !s.pad_bottom && !s.pad_left && !s.pad_right && s.C_out <= 16;
}

// Depthwise (groups == C_in, C_out = m*C_in), direct loops over channels.
// The output is clamped to [lo, hi] in the store (ReLU: 0, inf; ReLU6: 0, 6;
// none: -inf, inf); a NaN stays NaN.
void depthwise_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                       float* y, float lo, float hi);
void depthwise_backward_data(const Conv2dShape& s, const float* dy, const float* w, float* dx);
void depthwise_backward_weights(const Conv2dShape& s, const float* dy, const float* x, float* dw,
                                float* db);

// Throws std::invalid_argument when conv2d_check fails.
void check_or_throw(const Conv2dShape& s);

}  // namespace conv_detail
}  // namespace cnnx
