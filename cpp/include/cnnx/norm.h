// Batch normalisation over all axes but the last: x is viewed as
// [rows, C] (NHWC activations have rows = m * n_H * n_W).
#pragma once
#include <cstdint>

namespace cnnx {

// Training: batch statistics. Writes y, the batch mean and inv_std =
// 1 / sqrt(var + eps) (biased variance, used for normalising), and updates
// running_mean / running_var in place with momentum (PyTorch convention:
// r = (1 - momentum) * r + momentum * batch; the running variance uses the
// unbiased batch variance). running_* may be null (not tracked).
void batch_norm_forward_train(const float* x, const float* gamma, const float* beta, float* y,
                              int64_t rows, int64_t C, float eps, float momentum,
                              float* running_mean, float* running_var, float* save_mean,
                              float* save_inv_std);

// Evaluation: y = (x - mean) * inv_std * gamma + beta with the given
// statistics (inv_std already includes eps).
void batch_norm_forward_eval(const float* x, const float* gamma, const float* beta,
                             const float* mean, const float* inv_std, float* y, int64_t rows,
                             int64_t C);

// Backward. training: the statistics were the batch's, so dx has the mean
// and variance terms; otherwise dx = dy * gamma * inv_std. dx, dgamma, dbeta
// may each be null.
void batch_norm_backward(const float* dy, const float* x, const float* gamma, const float* mean,
                         const float* inv_std, float* dx, float* dgamma, float* dbeta,
                         int64_t rows, int64_t C, bool training);

}  // namespace cnnx
