// The fingerprint of a block of weights (see weight_print.h), written once
// over a vector of CNNX_WP_V 32-bit lanes; each ISA's file includes it with
// its own flags and namespace (CNNX_WP_NS), so the compiler vectorises it
// for that ISA. The result does not depend on the vector width: 64 lanes,
// each a chain over words j, j + 64, j + 128, ...
#include <cstdint>
#include <cstring>

#include "plan/weight_print.h"

namespace cnnx {
namespace plan_detail {
namespace CNNX_WP_NS {

typedef uint32_t VU __attribute__((vector_size(4 * CNNX_WP_V)));
constexpr int V = CNNX_WP_V;
constexpr int NV = kPrintLanes / V;
constexpr uint32_t kMulA = 0x9E3779B1u, kMulB = 0x85EBCA77u;  // odd: bijective multiplies

// Each lane: a = (a ^ w) * A, b = (b + w) * B. Both steps are bijections of
// the state for a given word and of the word for a given state, so a change
// of one word always changes its lane; a change of several words goes
// unnoticed only if both 32-bit chains of every lane they touch collide.
void fingerprint(const float* w, int64_t n, uint32_t* out) {
  VU a[NV], b[NV];
  for (int k = 0; k < NV; ++k) {
    a[k] = VU{} + 0x243F6A88u;
    b[k] = VU{} + 0x85A308D3u;
  }
  const VU ma = VU{} + kMulA, mb = VU{} + kMulB;
  const auto* u = reinterpret_cast<const unsigned char*>(w);
  int64_t i = 0;
  for (; i + kPrintLanes <= n; i += kPrintLanes) {
#pragma GCC unroll 16
    for (int k = 0; k < NV; ++k) {
      VU x;
      std::memcpy(&x, u + 4 * (i + k * V), sizeof(VU));
      a[k] = (a[k] ^ x) * ma;
      b[k] = (b[k] + x) * mb;
    }
  }
  uint32_t* oa = out;
  uint32_t* ob = out + kPrintLanes;
  for (int k = 0; k < NV; ++k) {
    std::memcpy(oa + k * V, &a[k], sizeof(VU));
    std::memcpy(ob + k * V, &b[k], sizeof(VU));
  }
  for (int64_t j = 0; i + j < n; ++j) {  // the last words, lane j
    uint32_t x;
    std::memcpy(&x, u + 4 * (i + j), 4);
    oa[j] = (oa[j] ^ x) * kMulA;
    ob[j] = (ob[j] + x) * kMulB;
  }
}

}  // namespace CNNX_WP_NS
}  // namespace plan_detail
}  // namespace cnnx
