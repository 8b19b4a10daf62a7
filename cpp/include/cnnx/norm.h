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
                         const float* inv_std, float* dx, float* dgamma, float* dbeta, int64_t rows,
                         int64_t C, bool training);

}  // namespace cnnx

namespace cnnx {

// ---- Local response normalisation (AlexNet, GoogLeNet; ONNX LRN) ------------
// x is [rows, C] (NHWC pixels). With an odd window `size` centred on c:
//   s[c] = bias + alpha / size * sum_{|j - c| <= size/2, 0 <= j < C} x[j]^2
//   y[c] = x[c] * s[c]^-beta
// exactly as ONNX and PyTorch define it (for odd sizes their windows agree).
// Throws std::invalid_argument for an even or non-positive size.
void lrn_forward(const float* x, float* y, int64_t rows, int64_t C, int64_t size, float alpha,
                 float beta, float bias);
// dx[c] = dy[c] s[c]^-beta - 2 alpha beta / size * x[c] *
//         sum_{|j - c| <= size/2} dy[j] x[j] s[j]^(-beta - 1)   (s recomputed from x)
void lrn_backward(const float* dy, const float* x, float* dx, int64_t rows, int64_t C, int64_t size,
                  float alpha, float beta, float bias);

// ---- Group normalisation (Wu & He 2018) -------------------------------------
// x is n examples of `count` values each, NHWC-ordered with C channels last
// (count = pixels * C). The C channels split into `groups` groups of C/groups;
// each (example, group) is normalised by its own mean and (biased) variance
// over its pixels * C/groups values, then y = xhat * gamma[c] + beta[c]
// (gamma / beta may be null: 1 / 0). Writes mean and inv_std = 1/sqrt(var+eps),
// n * groups of each (may be null).
void group_norm_forward(const float* x, const float* gamma, const float* beta, float* y, int64_t n,
                        int64_t count, int64_t C, int64_t groups, float eps, float* mean,
                        float* inv_std);
// From the saved statistics, or (mean / inv_std null) statistics recomputed
// from x with eps. dx, dgamma, dbeta may each be null; dgamma / dbeta are
// overwritten (sums over the n examples).
void group_norm_backward(const float* dy, const float* x, const float* gamma, const float* mean,
                         const float* inv_std, float* dx, float* dgamma, float* dbeta, int64_t n,
                         int64_t count, int64_t C, int64_t groups, float eps);

// ---- Layer normalisation over the last axis (ConvNeXt's channel norm) --------
// x is [rows, C]: each row normalised by its own mean and (biased) variance,
// y = xhat * gamma[c] + beta[c] (gamma / beta may be null). Writes mean and
// inv_std per row (may be null).
void layer_norm_forward(const float* x, const float* gamma, const float* beta, float* y,
                        int64_t rows, int64_t C, float eps, float* mean, float* inv_std);
// Recomputes the row statistics from x when mean / inv_std are null.
// dx, dgamma, dbeta may each be null; dgamma / dbeta are overwritten.
void layer_norm_backward(const float* dy, const float* x, const float* gamma, const float* mean,
                         const float* inv_std, float* dx, float* dgamma, float* dbeta, int64_t rows,
                         int64_t C, float eps);

}  // namespace cnnx
