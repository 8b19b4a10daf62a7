// Classification losses with integer labels.
#pragma once
#include <cstdint>

namespace cnnx {

// Fused softmax + cross-entropy over logits[N, K] with labels[N] in [0, K).
// Returns the mean loss; writes dlogits = (softmax - onehot) / N when
// dlogits is not null. Stable for any finite logits (log-sum-exp with the
// row maximum subtracted). Returns NaN and writes nothing if a label is out
// of range (callers check first; this is the last line of defence).
double softmax_cross_entropy(const float* logits, const int64_t* labels, int64_t N, int64_t K,
                             float* dlogits);

// Cross-entropy of probabilities[N, K]: mean of -log(max(p[label], eps)).
// dprobs (optional) = -1 / (N * max(p[label], eps)) at the label, else 0.
double cross_entropy(const float* probs, const int64_t* labels, int64_t N, int64_t K, float eps,
                     float* dprobs);

// Weighted sums over N rows, for the training plans' heads (one thread;
// callers split the batch). Each returns sum_i w_i * loss_i (w null: all 1)
// and writes the gradient of scale * that sum to d (added to d when
// accumulate; d null: no gradient). Labels are assumed in range.
//   softmax cross-entropy of logits[N, K]: loss_i = logsumexp(x_i) - x_i[label_i]
double softmax_cross_entropy_sum(const float* logits, const int64_t* labels, const float* w,
                                 int64_t N, int64_t K, float scale, float* d, bool accumulate);
//   squared error of y[N, D] against t[N, D]: loss_i = mean_j (y_ij - t_ij)^2
double squared_error_sum(const float* y, const float* t, const float* w, int64_t N, int64_t D,
                         float scale, float* d, bool accumulate);
//   absolute error: loss_i = mean_j |y_ij - t_ij| (gradient sign(e), 0 at e = 0)
double absolute_error_sum(const float* y, const float* t, const float* w, int64_t N, int64_t D,
                          float scale, float* d, bool accumulate);
//   Huber: mean_j of 0.5 e^2 where |e| <= delta, else delta * (|e| - 0.5 delta)
double huber_sum(const float* y, const float* t, const float* w, int64_t N, int64_t D, float delta,
                 float scale, float* d, bool accumulate);
//   softmax cross-entropy with target distributions t[N, K] (soft or smoothed
//   labels): loss_i = sum_k t_ik * (logsumexp(z_i) - z_ik); gradient
//   sum_k(t_ik) * softmax(z_i) - t_i
double softmax_cross_entropy_soft_sum(const float* logits, const float* t, const float* w,
                                      int64_t N, int64_t K, float scale, float* d, bool accumulate);
//   binary cross-entropy of logits z[N, D] and targets t in [0, 1], stable:
//   loss_i = mean_j max(z,0) - z t + log(1 + exp(-|z|)); gradient (sigmoid(z) - t) / D
double sigmoid_binary_cross_entropy_sum(const float* z, const float* t, const float* w, int64_t N,
                                        int64_t D, float scale, float* d, bool accumulate);
//   binary cross-entropy of probabilities p (clipped to [eps, 1 - eps], eps =
//   1e-7 as Keras): loss_i = -mean_j t log p + (1 - t) log(1 - p)
double binary_cross_entropy_sum(const float* p, const float* t, const float* w, int64_t N,
                                int64_t D, float scale, float* d, bool accumulate);

}  // namespace cnnx
