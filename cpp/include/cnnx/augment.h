// Preprocessing and random augmentation of NHWC images, with Keras's
// semantics (keras.layers.RandomFlip, RandomTranslation, RandomRotation,
// RandomZoom, RandomCrop, RandomContrast, Rescaling, Normalization).
//
// Randomness is counter-based: the draws of image i under seed s are a hash
// of (s, i, k), so the transform an image gets depends only on the seed and
// its index in the batch: never on threads, slices or call order. The
// training step passes the index of the batch's first image of each slice.
//
// Geometric transforms map each output pixel (x, y) to a source point
//   xs = m[0] x + m[1] y + m[2],   ys = m[3] x + m[4] y + m[5]
// (pixel-index coordinates, as TensorFlow's ImageProjectiveTransform), read
// with nearest or bilinear interpolation. Taps outside the image follow the
// fill mode, index by index (scipy.ndimage's modes):
//   reflect   d c b a | a b c d | d c b a   (about the edge of the last pixel)
//   wrap      a b c d | a b c d | a b c d
//   constant  k k k k | a b c d | k k k k   (k = fill_value)
//   nearest   a a a a | a b c d | d d d d
#pragma once
#include <cstdint>

namespace cnnx {

enum class AugmentKind : int {
  flip = 0,
  translate = 1,
  rotate = 2,
  zoom = 3,
  crop = 4,
  contrast = 5
};
enum class FillMode : int { reflect = 0, wrap = 1, constant = 2, nearest = 3 };
enum class Interpolation : int { nearest = 0, bilinear = 1 };

struct AugmentSpec {
  AugmentKind kind = AugmentKind::flip;
  int64_t h = 0, w = 0, c = 0;                // input image
  int64_t oh = 0, ow = 0;                     // output image (crop; every other kind: h, w)
  bool horizontal = false, vertical = false;  // flip: the axes that may flip
  // Ranges [lo, hi] the draws are uniform in:
  //   translate: [0] height, [1] width, fractions of the image size (+ = down / right);
  //   rotate:    [0] fractions of a full turn (+ = counter-clockwise);
  //   zoom:      [0] height, [1] width, zoom = 1 + draw (> 1 zooms out);
  //   contrast:  [0] the factor itself, in [1 - lower, 1 + upper].
  float lo[2] = {0.0f, 0.0f}, hi[2] = {0.0f, 0.0f};
  bool same_zoom = false;  // zoom: the width zooms as the height (width_factor None)
  FillMode fill = FillMode::reflect;
  Interpolation interp = Interpolation::bilinear;
  float fill_value = 0.0f;
  float value_lo = 0.0f, value_hi = 255.0f;  // contrast: outputs clipped to this range
};

// What augment_forward does to image `index` under `seed`.
struct ImageTransform {
  double m[6] = {1, 0, 0, 0, 1, 0};  // translate / rotate / zoom / inference crop
  bool flip_h = false, flip_v = false;
  int64_t top = 0, left = 0;  // crop in training
  double factor = 1.0;        // contrast
};

// Throws std::invalid_argument naming what is wrong with the spec.
void augment_check(const AugmentSpec& s);

// The k-th uniform draw in [0, 1) of image `index` (24 random bits).
double augment_uniform(uint64_t seed, int64_t index, int k);

// The transform of image `index` (training: the random one; inference: the
// identity, or a crop's centred resize: the largest window of the output's
// aspect ratio, resized bilinearly with half-pixel centres).
ImageTransform augment_transform(const AugmentSpec& s, uint64_t seed, int64_t index, bool training);

// y (n images of oh * ow * c) from x (n images of h * w * c); image i of the
// call has index first + i. Not training: the identity (a copy), or a crop's
// centred resize.
void augment_forward(const AugmentSpec& s, const float* x, float* y, int64_t n, uint64_t seed,
                     int64_t first, bool training);

// The gradient to x of the same call: the adjoint of each transform (a
// contrast reads its output y to mask what was clipped; others ignore y).
// accumulate: add to dx instead of overwriting it.
void augment_backward(const AugmentSpec& s, const float* dy, const float* y, float* dx, int64_t n,
                      uint64_t seed, int64_t first, bool training, bool accumulate);

// Rescaling: y = x * scale[c] + offset[c]; Normalization: y = (x - mean[c]) /
// max(sqrt(var[c]), eps). Over n values; the channel of value i is
// (i / inner) % channels. Backward: dx = dy * scale[c] / dy / denominator[c].
void rescale_forward(const float* x, float* y, int64_t n, int64_t channels, int64_t inner,
                     const float* scale, const float* offset);
void rescale_backward(const float* dy, float* dx, int64_t n, int64_t channels, int64_t inner,
                      const float* scale, bool accumulate);
void normalize_forward(const float* x, float* y, int64_t n, int64_t channels, int64_t inner,
                       const float* mean, const float* var, float eps);
void normalize_backward(const float* dy, float* dx, int64_t n, int64_t channels, int64_t inner,
                        const float* var, float eps, bool accumulate);

}  // namespace cnnx
