// Ops that move values without arithmetic on them (or with a little):
// padding and cropping, upsampling, depth <-> space, channel shuffle and
// axis permutation, forward and backward, NHWC float32 on raw pointers.
//
// All of them are memory-bound: in NHWC every output pixel is built from
// whole input pixels, so the inner loops run over the contiguous channel
// axis (copies, adds, two-tap blends) and are compiled per ISA
// (cpp/src/layout/layout_impl.h). Threads split the output rows.
#pragma once
#include <cstdint>

namespace cnnx {

// ---- padding and cropping ----------------------------------------------------------------
// ONNX Pad's modes: constant (a value), reflect (mirror without repeating
// the edge: ...c b | a b c d | c b...), edge (repeat the edge pixel).
enum class PadMode : int { constant = 0, reflect = 1, edge = 2 };

// x [N, H, W, C] -> y [N, H + top + bottom, W + left + right, C]. Constant
// mode takes negative pads too (they crop: Cropping2D); reflect needs
// 0 <= pad <= size - 1 per side, edge 0 <= pad.
struct Pad2dShape {
  int64_t N = 0, H = 0, W = 0, C = 0;
  int64_t top = 0, bottom = 0, left = 0, right = 0;
  int64_t out_h() const { return H + top + bottom; }
  int64_t out_w() const { return W + left + right; }
};
// Empty string when usable, else what is wrong ("padding: ...").
const char* pad2d_check(PadMode mode, const Pad2dShape& s);
void pad2d_forward(PadMode mode, const Pad2dShape& s, float value, const float* x, float* y);
// dx = dL/dx: the interior of dy plus (reflect, edge) every border value
// added to the pixel it copied.
void pad2d_backward(PadMode mode, const Pad2dShape& s, const float* dy, float* dx);

// ---- upsampling by integer factors ------------------------------------------------------
// nearest: y[i, j] = x[i / fh, j / fw];
// bilinear: PyTorch's align_corners=False rule, source coordinate
//   src = max((dst + 0.5) / f - 0.5, 0), blended between floor(src) and the
//   next pixel (the last one repeats at the far edge).
enum class UpsampleMode : int { nearest = 0, bilinear = 1 };

// x [N, H, W, C] -> y [N, H*fh, W*fw, C]; fh, fw >= 1.
void upsample2d_forward(UpsampleMode mode, int64_t N, int64_t H, int64_t W, int64_t C, int64_t fh,
                        int64_t fw, const float* x, float* y);
void upsample2d_backward(UpsampleMode mode, int64_t N, int64_t H, int64_t W, int64_t C, int64_t fh,
                         int64_t fw, const float* dy, float* dx);

// ---- depth <-> space ----------------------------------------------------------------------
// ONNX DepthToSpace's orders for the channel index of block offset (i, j)
// and output channel c (C' = C / b^2 channels out):
//   dcr: (i*b + j)*C' + c   (TensorFlow's depth_to_space, ONNX's default)
//   crd: c*b*b + i*b + j    (PyTorch's PixelShuffle)
enum class DepthOrder : int { dcr = 0, crd = 1 };

// x [N, H, W, C] -> y [N, H*b, W*b, C/(b*b)]; C divisible by b*b.
void depth_to_space(DepthOrder order, int64_t N, int64_t H, int64_t W, int64_t C, int64_t b,
                    const float* x, float* y);
// x [N, H, W, C] -> y [N, H/b, W/b, C*b*b]; H, W divisible by b. The exact
// inverse of depth_to_space with the same order (so each is the other's
// backward).
void space_to_depth(DepthOrder order, int64_t N, int64_t H, int64_t W, int64_t C, int64_t b,
                    const float* x, float* y);

// ---- channel shuffle ----------------------------------------------------------------------
// ShuffleNet's: per pixel, C = groups * (C / groups) channels seen as a
// (groups, C/groups) matrix, transposed: y[j*groups + g] = x[g*(C/groups) + j].
// Its backward is the shuffle with C/groups groups.
void channel_shuffle(int64_t pixels, int64_t C, int64_t groups, const float* x, float* y);

// ---- axis permutation ---------------------------------------------------------------------
// y = x transposed: N batches of a tensor of `rank` axes (shape[0..rank)),
// y's axis a is x's axis perm[a]. rank <= 8. Backward: the inverse permutation.
void transpose_nd(int64_t N, int rank, const int64_t* shape, const int* perm, const float* x,
                  float* y);

}  // namespace cnnx
