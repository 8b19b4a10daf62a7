// Depthwise convolution: the portable build of the kernels in
// conv_depthwise_impl.h and the dispatch to the per-ISA builds.
#define CNNX_DW_NS dw_generic
#define CNNX_DW_V 4
#include "conv/conv_depthwise_impl.h"

namespace cnnx {
namespace conv_detail {
namespace dw_avx2 {
void forward(const Conv2dShape&, const float*, const float*, const float*, float*, float, float);
void backward_data(const Conv2dShape&, const float*, const float*, float*);
void backward_weights(const Conv2dShape&, const float*, const float*, float*, float*);
}  // namespace dw_avx2
namespace dw_avx512 {
void forward(const Conv2dShape&, const float*, const float*, const float*, float*, float, float);
void backward_data(const Conv2dShape&, const float*, const float*, float*);
void backward_weights(const Conv2dShape&, const float*, const float*, float*, float*);
}  // namespace dw_avx512

void depthwise_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                       float* y, float lo, float hi) {
  switch (active_isa()) {
    case Isa::avx512: return dw_avx512::forward(s, x, w, bias, y, lo, hi);
    case Isa::avx2: return dw_avx2::forward(s, x, w, bias, y, lo, hi);
    default: return dw_generic::forward(s, x, w, bias, y, lo, hi);
  }
}

void depthwise_backward_data(const Conv2dShape& s, const float* dy, const float* w, float* dx) {
  switch (active_isa()) {
    case Isa::avx512: return dw_avx512::backward_data(s, dy, w, dx);
    case Isa::avx2: return dw_avx2::backward_data(s, dy, w, dx);
    default: return dw_generic::backward_data(s, dy, w, dx);
  }
}

void depthwise_backward_weights(const Conv2dShape& s, const float* dy, const float* x, float* dw,
                                float* db) {
  switch (active_isa()) {
    case Isa::avx512: return dw_avx512::backward_weights(s, dy, x, dw, db);
    case Isa::avx2: return dw_avx2::backward_weights(s, dy, x, dw, db);
    default: return dw_generic::backward_weights(s, dy, x, dw, db);
  }
}

}  // namespace conv_detail
}  // namespace cnnx
