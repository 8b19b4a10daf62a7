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

}  // namespace cnnx
