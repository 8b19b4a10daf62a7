// How the int8 ops of an inference plan run (cnnx/op_spec.h: quantize ..
// qconcat), whole or as part `part` of `parts` of a cooperative run:
// convolutions and pools by bands of output rows, dense layers by rows,
// elementwise ops by elements, concatenations by blocks. A uint8 value sits
// in a float buffer one byte per element, the chunk's images one after
// another. The kernels are those of cnnx/int8.h; inside a plan's parallel
// region they run on the calling thread (threads_for_flops says 1 there).
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "cnnx/int8.h"
#include "common/scratch.h"
#include "plan/plan_internal.h"

namespace cnnx {
namespace plan_detail {
namespace {

inline const uint8_t* u8(const float* p) { return reinterpret_cast<const uint8_t*>(p); }
inline uint8_t* u8(float* p) { return reinterpret_cast<uint8_t*>(p); }

QEpilogue store_of(const OpSpec& sp) {
  QEpilogue ep;
  ep.x = sp.qin[0];
  ep.bias = sp.bias;
  ep.bias_acc = sp.qbias;
  ep.act = sp.qact;
  ep.out = sp.qstore;
  ep.y = sp.qout;
  return ep;
}

size_t store_bytes(const OpSpec& sp) { return sp.qstore == QOutput::u8 ? 1 : 4; }

bool same_params(const QuantParams& a, const QuantParams& b) {
  return a.scale == b.scale && a.zero_point == b.zero_point;
}

// y = x requantised from xq to yq (n values), through float in short runs:
// the rounding of dequantize then quantize (real = xq.scale * (x - zp),
// y = nearbyint(real / yq.scale) + zp), the same on every ISA.
void requantize(int64_t n, const uint8_t* x, QuantParams xq, QuantParams yq, uint8_t* y) {
  constexpr int64_t kRun = 4096;
  float* tmp = thread_scratch(ScratchSlot::op_0, static_cast<size_t>(std::min(n, kRun)));
  for (int64_t i = 0; i < n; i += kRun) {
    const int64_t m = std::min(kRun, n - i);
    dequantize_u8(m, x + i, xq, tmp);
    quantize_u8(m, tmp, yq, y + i);
  }
}

void run_qconv(const OpSpec& sp, int64_t n_out, float* const* buf, int64_t n, int part, int parts) {
  const Conv2dShape& s = sp.conv;
  const uint8_t* x = u8(buf[sp.in[0]]);
  uint8_t* y = u8(buf[sp.out]);
  const QEpilogue ep = store_of(sp);
  const size_t ob = store_bytes(sp);
  if (parts == 1 || !conv_bands_ok(s)) {
    if (part != 0) return;
    Conv2dShape t = s;
    t.N = n;
    qconv2d_forward(t, x, sp.qw, ep, y);
    return;
  }
  // Bands of output rows, each a convolution of its own on the input rows it reads.
  const int64_t OH = s.out_h(), row = s.out_w() * s.C_out, in_img = s.H * s.W * s.C_in;
  int64_t u0, u1;
  part_range(n * OH, part, parts, 1, &u0, &u1);
  while (u0 < u1) {
    const int64_t img = u0 / OH, a = u0 % OH, e = std::min(OH, a + (u1 - u0));
    int64_t first;
    const Conv2dShape t = conv_band(s, a, e, &first);
    qconv2d_forward(t, x + img * in_img + first * s.W * s.C_in, sp.qw, ep,
                    y + (img * n_out + a * row) * ob, 1);
    u0 += e - a;
  }
}

void run_qpool(const OpSpec& sp, int64_t n_out, float* const* buf, int64_t n, int part, int parts) {
  const uint8_t* x = u8(buf[sp.in[0]]);
  uint8_t* y = u8(buf[sp.out]);
  PoolShape s = sp.ps;
  Pool2dParams p = sp.pp;
  if (sp.pool == PlanPool::global_avg) {  // one window over the whole image
    p = Pool2dParams{s.h, s.w, 1, 1, 0, 0, 0, 0};
    int64_t i0, i1;
    part_range(n, part, parts, 1, &i0, &i1);
    if (i0 >= i1) return;
    s.n = i1 - i0;
    qavg_pool2d_forward(s, p, false, sp.qin[0], sp.qout, x + i0 * s.h * s.w * s.c, y + i0 * s.c);
    return;
  }
  auto pool = [&](const PoolShape& ts, const Pool2dParams& tp, const uint8_t* xb, uint8_t* yb) {
    if (sp.pool == PlanPool::max)
      qmax_pool2d_forward(ts, tp, xb, yb);
    else
      qavg_pool2d_forward(ts, tp, sp.count_include_pad, sp.qin[0], sp.qout, xb, yb);
  };
  if (parts == 1) {
    s.n = n;
    pool(s, p, x, y);
    return;
  }
  const int64_t OH = sp.oh, row = sp.ow * s.c, in_img = s.h * s.w * s.c;
  int64_t u0, u1;
  part_range(n * OH, part, parts, 1, &u0, &u1);
  while (u0 < u1) {
    const int64_t img = u0 / OH, a = u0 % OH, e = std::min(OH, a + (u1 - u0));
    PoolShape ts;
    Pool2dParams tp;
    int64_t first;
    pool_band(s, p, a, e, &ts, &tp, &first);
    pool(ts, tp, x + img * in_img + first * s.w * s.c, y + img * n_out + a * row);
    u0 += e - a;
  }
}

void run_qconcat(const OpSpec& sp, float* const* buf, int64_t n, int part, int parts) {
  int64_t r0, r1;
  part_range(n * sp.outer, part, parts, 1, &r0, &r1);
  if (r0 >= r1) return;
  int64_t row = 0;
  for (int64_t i : sp.inner) row += i;
  uint8_t* y = u8(buf[sp.out]);
  int64_t col = 0;
  for (size_t i = 0; i < sp.in.size(); ++i) {
    const int64_t w = sp.inner[i];
    const uint8_t* x = u8(buf[sp.in[i]]);
    const bool copy = same_params(sp.qin[i], sp.qout);
    for (int64_t r = r0; r < r1; ++r) {
      if (copy)
        std::memcpy(y + r * row + col, x + r * w, static_cast<size_t>(w));
      else
        requantize(w, x + r * w, sp.qin[i], sp.qout, y + r * row + col);
    }
    col += w;
  }
}

}  // namespace

void run_qop_part(const OpSpec& sp, int64_t n_out, float* const* buf, int64_t n, int part,
                  int parts) {
  switch (sp.kind) {
    case OpKind::quantize:
    case OpKind::dequantize:
    case OpKind::qadd: {
      int64_t e0, e1;
      part_range(n * n_out, part, parts, 64, &e0, &e1);
      if (e1 <= e0) return;
      if (sp.kind == OpKind::quantize)
        quantize_u8(e1 - e0, buf[sp.in[0]] + e0, sp.qout, u8(buf[sp.out]) + e0);
      else if (sp.kind == OpKind::dequantize)
        dequantize_u8(e1 - e0, u8(buf[sp.in[0]]) + e0, sp.qin[0], buf[sp.out] + e0);
      else
        qadd(e1 - e0, u8(buf[sp.in[0]]) + e0, sp.qin[0], u8(buf[sp.in[1]]) + e0, sp.qin[1], sp.qout,
             sp.qact, u8(buf[sp.out]) + e0);
      return;
    }
    case OpKind::qconv2d: run_qconv(sp, n_out, buf, n, part, parts); return;
    case OpKind::qdense: {
      int64_t r0, r1;
      part_range(n, part, parts, 1, &r0, &r1);
      if (r0 >= r1) return;
      qgemm(r1 - r0, u8(buf[sp.in[0]]) + r0 * sp.in_f, sp.in_f, sp.qw, store_of(sp),
            u8(buf[sp.out]) + r0 * sp.out_f * store_bytes(sp), sp.out_f);
      return;
    }
    case OpKind::qpool: run_qpool(sp, n_out, buf, n, part, parts); return;
    case OpKind::qconcat: run_qconcat(sp, buf, n, part, parts); return;
    default: throw std::invalid_argument(std::string(op_kind_name(sp.kind)) + ": not an int8 op");
  }
}

}  // namespace plan_detail
}  // namespace cnnx
