// How each op of an inference plan runs, whole or as part `part` of
// `parts` of it (a cooperative run): convolutions and pools split by output
// rows (each band a convolution of its own on the input rows it reads),
// dense layers by columns (few rows) or rows, elementwise ops by elements.
#include <algorithm>

#include "cnnx/dense.h"
#include "cnnx/norm.h"
#include "cnnx/plan.h"
#include "plan/conv_direct_padded.h"
#include "plan/plan_internal.h"

namespace cnnx {

using plan_detail::apply_activation;
using plan_detail::ceil_div;
using plan_detail::dense_by_columns;
using plan_detail::fused;

namespace {

// Part `part` of `parts` of [0, total), in units of `align`.
void part_range(int64_t total, int part, int parts, int64_t align, int64_t* b, int64_t* e) {
  const int64_t units = ceil_div(total, align);
  *b = std::min(total, units * part / parts * align);
  *e = std::min(total, units * (part + 1) / parts * align);
}

// Output rows [a, b) of one image as a convolution of their own: the band of
// input rows they read, padded only where the band meets the image border.
// Valid when no output row reads padding alone (see conv_bands_ok).
Conv2dShape conv_band(const Conv2dShape& s, int64_t a, int64_t b, int64_t* first_row) {
  Conv2dShape t = s;
  t.N = 1;
  const int64_t r0 = a * s.stride_h - s.pad_top;
  const int64_t r1 = (b - 1) * s.stride_h + (s.KH - 1) * s.dilation_h + 1 - s.pad_top;
  const int64_t c0 = std::max<int64_t>(r0, 0), c1 = std::min(r1, s.H);
  t.H = c1 - c0;
  t.pad_top = c0 - r0;
  t.pad_bottom = r1 - c1;
  *first_row = c0;
  return t;
}

bool conv_bands_ok(const Conv2dShape& s) {
  const int64_t reach = (s.KH - 1) * s.dilation_h;
  return s.pad_top <= reach && s.pad_bottom <= reach;
}

// The same for pooling windows (padding is at most half a window, so every
// band reads at least one real row).
void pool_band(const PoolShape& s, const Pool2dParams& p, int64_t a, int64_t b, PoolShape* ts,
               Pool2dParams* tp, int64_t* first_row) {
  const int64_t r0 = a * p.stride_h - p.pad_top;
  const int64_t r1 = (b - 1) * p.stride_h + p.kernel_h - p.pad_top;
  const int64_t c0 = std::max<int64_t>(r0, 0), c1 = std::min(r1, s.h);
  *ts = s;
  ts->n = 1;
  ts->h = c1 - c0;
  *tp = p;
  tp->pad_top = c0 - r0;
  tp->pad_bottom = r1 - c1;
  *first_row = c0;
}

}  // namespace

// Part `part` of `parts` of op over n images; parts == 1 is the whole op.
// Threads of a cooperative run split convolutions and pools by output rows,
// dense layers by columns (few rows) or rows, elementwise ops by elements;
// ops too small to split run on part 0.
void InferencePlan::run_op_part(Op& op, float* const* buf, int64_t n, int part, int parts) {
  const float* x = buf[op.in];
  float* y = buf[op.out];
  const float* w = op.has_bn ? op.wf.data() : op.w;
  const float* b = op.has_bn ? op.bf.data() : op.bias;
  switch (op.kind) {
    case Kind::conv: {
      const Conv2dShape& s = op.conv;
      const float* res = op.in2 >= 0 ? buf[op.in2] : nullptr;  // a fused residual sum
      // After the kernel: the residual (unless the kernel added it) and the
      // activations no kernel fuses, on output values [o, o + count).
      auto finish = [&](int64_t o, int64_t count, bool res_done) {
        float* yo = y + o;
        if (res && !res_done) {
          const float* ro = res + o;
          if (op.act == PlanAct::relu) {
            for (int64_t i = 0; i < count; ++i) yo[i] = std::max(yo[i] + ro[i], 0.0f);
            return;
          }
          for (int64_t i = 0; i < count; ++i) yo[i] += ro[i];
        }
        if (op.act != PlanAct::none && (op.act != PlanAct::relu || (res && !res_done)))
          apply_activation(op.act, op.alpha, yo, count, op.k);
      };
      // With a residual to add, a kernel may fuse the ReLU only if it adds first.
      const Activation kernel_act = res ? Activation::none : fused(op.act);
      const int64_t OH = s.out_h(), row = s.out_w() * s.C_out, in_img = s.H * s.W * s.C_in;
      if (plan_detail::conv_direct_padded_ok(s, n)) {
        // Narrow 3x3 layers: the plan's own kernel on a padded copy, by rows;
        // it adds the residual before the ReLU itself.
        Conv2dShape t = s;
        t.N = n;
        // Batch norm as a per-channel scale in the kernel's store: the raw
        // weights, so no folded copy of them is needed (see fold()).
        plan_detail::DirectEpilogue ep;
        ep.bias = b;
        ep.scale = op.has_bn ? op.scale.data() : nullptr;
        ep.res = res;
        ep.relu = op.act == PlanAct::relu;
        int64_t u0, u1;
        part_range(n * OH, part, parts, 1, &u0, &u1);
        while (u0 < u1) {
          const int64_t img = u0 / OH, a = u0 % OH, e = std::min(OH, a + (u1 - u0));
          plan_detail::conv_direct_padded(t, x, op.w, ep, y, img, a, e);
          if (op.act != PlanAct::relu && op.act != PlanAct::none)
            apply_activation(op.act, op.alpha, y + img * op.n + a * row, (e - a) * row, op.k);
          u0 += e - a;
        }
        return;
      }
      if (parts == 1 || !conv_bands_ok(s)) {
        if (part != 0) return;
        Conv2dShape t = s;
        t.N = n;
        conv2d_forward(t, x, w, b, y, kernel_act);
        finish(0, n * op.n, false);
        return;
      }
      int64_t u0, u1;
      part_range(n * OH, part, parts, 1, &u0, &u1);
      while (u0 < u1) {
        const int64_t img = u0 / OH, a = u0 % OH, e = std::min(OH, a + (u1 - u0));
        int64_t first;
        const Conv2dShape t = conv_band(s, a, e, &first);
        const int64_t o = img * op.n + a * row;
        conv2d_forward(t, x + img * in_img + first * s.W * s.C_in, w, b, y + o, kernel_act);
        finish(o, (e - a) * row, false);
        u0 += e - a;
      }
      return;
    }
    case Kind::dense: {
      if (dense_by_columns(n, parts, op.out_f)) {
        int64_t c0, c1;
        part_range(op.out_f, part, parts, 64, &c0, &c1);
        if (c0 >= c1) return;
        ops_detail::dense_rows_avx512(x, w, b, y, n, op.in_f, op.out_f, c0, c1,
                                      op.act == PlanAct::relu);
        if (op.act != PlanAct::relu && op.act != PlanAct::none) {
          // softmax needs whole rows: leave it to a part that owns them all
          if (op.act == PlanAct::softmax) return;
          for (int64_t r = 0; r < n; ++r)
            apply_activation(op.act, op.alpha, y + r * op.out_f + c0, c1 - c0, c1 - c0);
        }
        return;
      }
      int64_t r0, r1;
      part_range(n, part, parts, 1, &r0, &r1);
      if (r0 >= r1) return;
      dense_forward(x + r0 * op.in_f, w, b, y + r0 * op.out_f, r1 - r0, op.in_f, op.out_f,
                    fused(op.act));
      if (op.act != PlanAct::relu)
        apply_activation(op.act, op.alpha, y + r0 * op.out_f, (r1 - r0) * op.n, op.k);
      return;
    }
    case Kind::pool: {
      if (parts == 1 || op.pool == PlanPool::adaptive_avg || op.pool == PlanPool::adaptive_max ||
          op.pool == PlanPool::global_avg) {
        if (part != 0) return;
        PoolShape s = op.ps;
        s.n = n;
        plan_detail::pool_forward(op.pool, s, op.pp, op.count_include_pad, op.oh, op.ow, x, y);
        return;
      }
      const int64_t OH = op.oh, row = op.ow * op.ps.c, in_img = op.ps.h * op.ps.w * op.ps.c;
      int64_t u0, u1;
      part_range(n * OH, part, parts, 1, &u0, &u1);
      while (u0 < u1) {
        const int64_t img = u0 / OH, a = u0 % OH, e = std::min(OH, a + (u1 - u0));
        PoolShape ts;
        Pool2dParams tp;
        int64_t first;
        pool_band(op.ps, op.pp, a, e, &ts, &tp, &first);
        const float* xb = x + img * in_img + first * op.ps.w * op.ps.c;
        float* yb = y + img * op.n + a * row;
        if (op.pool == PlanPool::max)
          max_pool2d_forward(ts, tp, xb, yb);
        else
          avg_pool2d_forward(ts, tp, op.count_include_pad, xb, yb);
        u0 += e - a;
      }
      return;
    }
    case Kind::batch_norm: {
      const int64_t rows = n * op.n / op.channels;
      int64_t r0, r1;
      part_range(rows, part, parts, 1, &r0, &r1);
      if (r0 >= r1) return;
      batch_norm_forward_eval(x + r0 * op.channels, op.bn.gamma, op.bn.beta, op.bn.mean,
                              op.inv_std.data(), y + r0 * op.channels, r1 - r0, op.channels);
      return;
    }
    case Kind::activation: {
      // whole softmax groups per part (k divides every boundary)
      int64_t e0, e1;
      part_range(n * op.n, part, parts, op.act == PlanAct::softmax ? op.k : 16, &e0, &e1);
      if (e1 > e0)
        plan_detail::activation_forward(op.act, op.alpha, x + e0, y + e0, e1 - e0, op.k);
      return;
    }
    case Kind::add: {
      int64_t e0, e1;
      part_range(n * op.n, part, parts, op.act == PlanAct::softmax ? op.k : 16, &e0, &e1);
      const float* a = x + e0;
      const float* c = buf[op.in2] + e0;
      float* ys = y + e0;
      const int64_t total = e1 - e0;
      if (total <= 0) return;
      if (op.act == PlanAct::relu) {
        for (int64_t i = 0; i < total; ++i) ys[i] = std::max(a[i] + c[i], 0.0f);
      } else {
        for (int64_t i = 0; i < total; ++i) ys[i] = a[i] + c[i];
        apply_activation(op.act, op.alpha, ys, total, op.k);
      }
      return;
    }
  }
}

}  // namespace cnnx
