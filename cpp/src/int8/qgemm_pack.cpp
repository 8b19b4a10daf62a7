// Weight packing, done once per layer: int8 weights into the active
// micro-kernel's panel layout (see qgemm_ukernel.h), with the per-column sums
// that compensate the activations' zero point and the per-channel scales.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

#include "int8/qgemm_ukernel.h"

namespace cnnx {
namespace {

using Impl = QPackedWeights::Impl;

std::unique_ptr<uint8_t, void (*)(void*)> zeroed_aligned(size_t bytes) {
  const size_t rounded = (bytes + 63) / 64 * 64 + 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, rounded);
  return {static_cast<uint8_t*>(p), std::free};
}

void check_scales(const float* scales, int64_t n) {
  if (!scales) throw std::invalid_argument("w_scale: expected one scale per output channel");
  for (int64_t i = 0; i < n; ++i)
    if (!(std::isfinite(scales[i]) && scales[i] > 0.0f))
      throw std::invalid_argument("w_scale: expected finite scales > 0, got " +
                                  std::to_string(scales[i]) + " at channel " + std::to_string(i));
}

void check_depth(int64_t K) {
  if (K > kQGemmMaxK)
    throw std::invalid_argument("w: the reduction depth K=" + std::to_string(K) +
                                " exceeds 65536 (the int32 accumulator could overflow)");
}

// Panels of group g: columns [col0, col0 + n_group) of the K x ldw matrix w.
void pack_group(Impl& P, const int8_t* w, int64_t ldw, int64_t col0, int64_t g) {
  const QGemmConfig& cfg = *P.config;
  const int nr = cfg.nr, eb = cfg.elem_bytes, kps = qgemm_k_per_step(cfg), dup = cfg.dup;
  for (int64_t p = 0; p < P.panels; ++p) {
    uint8_t* dst = P.data.get() + (g * P.panels + p) * P.panel_bytes;
    const int64_t jn = std::min<int64_t>(nr, P.n_group - p * nr);
    for (int64_t k = 0; k < P.K; ++k) {
      const int8_t* src = w + k * ldw + col0 + p * nr;
      const int64_t kl = (k / P.seg_len) * P.seg_pad + k % P.seg_len;  // packed depth
      uint8_t* step = dst + (kl / kps) * nr * 4 * dup + (kl % kps) * eb;
      if (eb == 1) {
        for (int d = 0; d < dup; ++d)
          for (int64_t j = 0; j < jn; ++j) step[(d * nr + j) * 4] = static_cast<uint8_t>(src[j]);
      } else {
        for (int64_t j = 0; j < jn; ++j) {
          const int16_t v = src[j];
          std::memcpy(step + j * 4, &v, 2);
        }
      }
    }
  }
  for (int64_t j = 0; j < P.n_group; ++j) {
    int32_t sum = 0;
    for (int64_t k = 0; k < P.K; ++k) sum += w[k * ldw + col0 + j];
    P.colsum[g * P.n_group + j] = sum;
  }
}

std::shared_ptr<Impl> new_gemm_pack(int64_t K, int64_t row_segs, int64_t N, int64_t groups,
                                    const float* scales) {
  auto P = std::make_shared<Impl>();
  P->family = &qgemm_config();
  P->config = P->family;
  for (const QGemmConfig* nc : P->family->narrow)  // the narrowest kernel that fits
    if (nc && N / groups <= nc->nr) {
      P->config = nc;
      break;
    }
  P->K = K;
  P->row_segs = row_segs;
  P->seg_len = K / row_segs;
  P->seg_pad = (P->seg_len + 3) / 4 * 4;
  P->K_pad = row_segs * P->seg_pad;
  P->N = N;
  P->groups = groups;
  P->n_group = N / groups;
  P->panels = (P->n_group + P->config->nr - 1) / P->config->nr;
  const int64_t steps = P->K_pad / qgemm_k_per_step(*P->config);
  P->panel_bytes = steps * P->config->nr * 4 * P->config->dup;
  P->bytes = static_cast<size_t>(groups * P->panels * P->panel_bytes);
  P->data = zeroed_aligned(P->bytes);
  P->colsum.reset(new int32_t[N]);
  P->scale.reset(new float[N]);
  std::memcpy(P->scale.get(), scales, sizeof(float) * N);
  return P;
}

}  // namespace

const char* QPackedWeights::kernel_name() const {
  return impl_->depthwise ? "qdepthwise" : impl_->family->name;
}
int64_t QPackedWeights::k() const { return impl_->K; }
int64_t QPackedWeights::n() const { return impl_->N; }
int64_t QPackedWeights::groups() const { return impl_->groups; }
bool QPackedWeights::depthwise() const { return impl_->depthwise; }
const float* QPackedWeights::scales() const { return impl_->scale.get(); }
const int32_t* QPackedWeights::column_sums() const { return impl_->colsum.get(); }
size_t QPackedWeights::packed_bytes() const { return impl_->bytes; }

QPackedWeights qgemm_pack_weights(int64_t K, int64_t N, const int8_t* w, int64_t ldw,
                                  const float* scales) {
  if (K < 1 || N < 1)
    throw std::invalid_argument("w: expected a K x N matrix with K, N >= 1, got " +
                                std::to_string(K) + " x " + std::to_string(N));
  if (ldw < N) throw std::invalid_argument("w: row stride smaller than N");
  check_depth(K);
  check_scales(scales, N);
  auto P = new_gemm_pack(K, 1, N, 1, scales);
  pack_group(*P, w, ldw, 0, 0);
  return QPackedWeights(P);
}

QPackedWeights qconv2d_pack_weights(const Conv2dShape& s, const int8_t* w, const float* scales) {
  if (s.KH < 1 || s.KW < 1 || s.C_out < 1)
    throw std::invalid_argument("w: expected a filter of at least 1x1 with C_out >= 1");
  if (s.C_in < 1) throw std::invalid_argument("x: expected at least one input channel");
  if (s.groups < 1 || s.C_in % s.groups || s.C_out % s.groups)
    throw std::invalid_argument("groups: C_in and C_out must both be divisible by groups");
  check_scales(scales, s.C_out);
  const int64_t taps = s.KH * s.KW;
  if (taps > kQGemmMaxK) check_depth(taps);
  if (s.is_depthwise()) {
    auto P = std::make_shared<Impl>();
    P->depthwise = true;
    P->K = taps;
    P->seg_len = P->seg_pad = taps;
    P->K_pad = taps;
    P->N = s.C_out;
    P->groups = s.groups;
    P->n_group = s.C_out / s.groups;
    P->KH = s.KH;
    P->KW = s.KW;
    P->C_in = s.C_in;
    P->bytes = static_cast<size_t>(taps * s.C_out) * sizeof(int32_t);
    P->data = zeroed_aligned(P->bytes);
    P->colsum.reset(new int32_t[s.C_out]);
    P->scale.reset(new float[s.C_out]);
    std::memcpy(P->scale.get(), scales, sizeof(float) * s.C_out);
    int32_t* lanes = reinterpret_cast<int32_t*>(P->data.get());
    for (int64_t c = 0; c < s.C_out; ++c) {
      int32_t sum = 0;
      for (int64_t t = 0; t < taps; ++t) {
        const int8_t v = w[t * s.C_out + c];
        lanes[t * s.C_out + c] =
            static_cast<int32_t>(static_cast<uint16_t>(static_cast<int16_t>(v)));
        sum += v;
      }
      P->colsum[c] = sum;
    }
    // The vpdpbusd layout: vector k of (block cb, tap group g) holds, in
    // 128-bit lane L, channels cb*64 + 16L + 4k + j (j = 0..3), 4 bytes each:
    // the weights of taps 4g..4g+3 (zero past the last tap or channel).
    const int64_t groups4 = (taps + 3) / 4, blocks = (s.C_out + 63) / 64;
    P->dw4 = zeroed_aligned(static_cast<size_t>(blocks * groups4 * 256));
    for (int64_t cb = 0; cb < blocks; ++cb)
      for (int64_t g = 0; g < groups4; ++g)
        for (int k = 0; k < 4; ++k)
          for (int L = 0; L < 4; ++L)
            for (int j = 0; j < 4; ++j)
              for (int t = 0; t < 4; ++t) {
                const int64_t c = cb * 64 + 16 * L + 4 * k + j, tap = 4 * g + t;
                if (c >= s.C_out || tap >= taps) continue;
                P->dw4.get()[((cb * groups4 + g) * 4 + k) * 64 + L * 16 + j * 4 + t] =
                    static_cast<uint8_t>(w[tap * s.C_out + c]);
              }
    return QPackedWeights(P);
  }
  const int64_t K = taps * s.cin_per_group();
  check_depth(K);
  auto P = new_gemm_pack(K, s.KH, s.C_out, s.groups, scales);
  P->KH = s.KH;
  P->KW = s.KW;
  P->C_in = s.C_in;
  for (int64_t g = 0; g < s.groups; ++g) pack_group(*P, w, s.C_out, g * P->n_group, g);
  return QPackedWeights(P);
}

}  // namespace cnnx
