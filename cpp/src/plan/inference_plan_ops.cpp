// How each op of an inference plan runs, whole or as part `part` of
// `parts` of it (a cooperative run): convolutions and pools split by output
// rows (each band a convolution of its own on the input rows it reads),
// dense layers by columns (few rows) or rows, elementwise ops by elements.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "cnnx/augment.h"
#include "cnnx/dense.h"
#include "cnnx/eltwise.h"
#include "cnnx/norm.h"
#include "cnnx/plan.h"
#include "conv/conv_internal.h"
#include "plan/conv_direct_padded.h"
#include "plan/layout_ops.h"
#include "plan/plan_internal.h"

namespace cnnx {

using plan_detail::apply_activation;
using plan_detail::ceil_div;
using plan_detail::dense_by_columns;
using plan_detail::fused;

using plan_detail::conv_band;
using plan_detail::conv_bands_ok;
using plan_detail::part_range;
using plan_detail::pool_band;

// Part `part` of `parts` of op over n images; parts == 1 is the whole op.
// Threads of a cooperative run split convolutions and pools by output rows,
// dense layers by columns (few rows) or rows, elementwise ops by elements;
// ops too small to split run on part 0.
void InferencePlan::run_op_part(Op& op, float* const* buf, int64_t n, int part, int parts) {
  const OpSpec& sp = op.s;
  const float* x = buf[sp.in[0]];
  float* y = buf[sp.out];
  const float* w = sp.has_bn ? op.wf.data() : sp.w;
  const float* b = sp.has_bn ? op.bf.data() : sp.bias;
  switch (sp.kind) {
    case OpKind::conv2d: {
      const Conv2dShape& s = sp.conv;
      const float* res = sp.in.size() > 1 ? buf[sp.in[1]] : nullptr;  // a fused residual sum
      // After the kernel: the residual (unless the kernel added it) and the
      // activations no kernel fuses, on output values [o, o + count).
      auto finish = [&](int64_t o, int64_t count, bool res_done) {
        float* yo = y + o;
        if (res && !res_done) {
          const float* ro = res + o;
          if (sp.act == PlanAct::relu) {
            for (int64_t i = 0; i < count; ++i) yo[i] = std::max(yo[i] + ro[i], 0.0f);
            return;
          }
          for (int64_t i = 0; i < count; ++i) yo[i] += ro[i];
        }
        if (sp.act != PlanAct::none && (sp.act != PlanAct::relu || (res && !res_done)))
          apply_activation(sp.act, sp.alpha, yo, count, sp.k, sp.beta);
      };
      // With a residual to add, a kernel may fuse the ReLU only if it adds first.
      const Activation kernel_act = res ? Activation::none : fused(sp.act);
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
        ep.scale = sp.has_bn ? op.scale.data() : nullptr;
        ep.res = res;
        ep.relu = sp.act == PlanAct::relu;
        int64_t u0, u1;
        part_range(n * OH, part, parts, 1, &u0, &u1);
        while (u0 < u1) {
          const int64_t img = u0 / OH, a = u0 % OH, e = std::min(OH, a + (u1 - u0));
          plan_detail::conv_direct_padded(t, x, sp.w, ep, y, img, a, e);
          if (sp.act != PlanAct::relu && sp.act != PlanAct::none)
            apply_activation(sp.act, sp.alpha, y + img * op.n + a * row, (e - a) * row, sp.k,
                             sp.beta);
          u0 += e - a;
        }
        return;
      }
      if (op.packed == 1) {
        // Weights packed once (see refresh_packed); batch norm as a scale
        // and the residual in the kernel's store; ConvPacked splits the
        // parts of a cooperative run itself (pixel tiles and channel blocks).
        ConvEpilogue ep;
        ep.bias = b;
        ep.scale = sp.has_bn ? op.scale.data() : nullptr;
        ep.res = res;
        ep.act = fused(sp.act);
        // ReLU6 (a clip to [0, max]) in the kernel's store
        const bool relu_max = sp.act == PlanAct::clip && sp.alpha == 0.0f && op.cp.takes_act_max();
        if (relu_max) {
          ep.act = Activation::relu;
          ep.act_max = sp.beta;
        }
        const bool other_act = sp.act != PlanAct::none && sp.act != PlanAct::relu && !relu_max;
        if (parts == 1 || other_act) {
          // (an activation no kernel fuses needs the whole output first)
          if (part != 0) return;
          op.cp.forward(x, n, y, ep, parts == 1 ? 0 : 1);
          if (other_act) apply_activation(sp.act, sp.alpha, y, n * op.n, sp.k, sp.beta);
          return;
        }
        op.cp.forward_part(x, n, y, ep, part, parts);
        return;
      }
      // Depthwise layers clamp in their store: ReLU and ReLU6 (MobileNet's
      // clip to [0, 6]) cost no pass of their own.
      float lo = -INFINITY, hi = INFINITY;
      const bool dw_clamp =
          s.is_depthwise() && !res &&
          (sp.act == PlanAct::none || sp.act == PlanAct::relu || sp.act == PlanAct::clip);
      if (dw_clamp && sp.act != PlanAct::none) {
        lo = sp.act == PlanAct::relu ? 0.0f : sp.alpha;
        hi = sp.act == PlanAct::relu ? INFINITY : sp.beta;
      }
      auto conv = [&](const Conv2dShape& t, const float* xt, float* yt, int64_t o, int64_t count) {
        if (dw_clamp) {
          conv_detail::depthwise_forward(t, xt, w, b, yt, lo, hi);
          return;
        }
        conv2d_forward(t, xt, w, b, yt, kernel_act);
        finish(o, count, false);
      };
      if (parts == 1 || !conv_bands_ok(s)) {
        if (part != 0) return;
        Conv2dShape t = s;
        t.N = n;
        conv(t, x, y, 0, n * op.n);
        return;
      }
      int64_t u0, u1;
      part_range(n * OH, part, parts, 1, &u0, &u1);
      while (u0 < u1) {
        const int64_t img = u0 / OH, a = u0 % OH, e = std::min(OH, a + (u1 - u0));
        int64_t first;
        const Conv2dShape t = conv_band(s, a, e, &first);
        const int64_t o = img * op.n + a * row;
        conv(t, x + img * in_img + first * s.W * s.C_in, y + o, o, (e - a) * row);
        u0 += e - a;
      }
      return;
    }
    case OpKind::dense: {
      if (dense_by_columns(n, parts, sp.out_f)) {
        int64_t c0, c1;
        part_range(sp.out_f, part, parts, 64, &c0, &c1);
        if (c0 >= c1) return;
        ops_detail::dense_rows_avx512(x, w, b, y, n, sp.in_f, sp.out_f, c0, c1,
                                      sp.act == PlanAct::relu);
        if (sp.act != PlanAct::relu && sp.act != PlanAct::none) {
          // softmax needs whole rows: leave it to a part that owns them all
          if (grouped_act(sp.act)) return;
          for (int64_t r = 0; r < n; ++r)
            apply_activation(sp.act, sp.alpha, y + r * sp.out_f + c0, c1 - c0, c1 - c0, sp.beta);
        }
        return;
      }
      int64_t r0, r1;
      part_range(n, part, parts, 1, &r0, &r1);
      if (r0 >= r1) return;
      dense_forward(x + r0 * sp.in_f, w, b, y + r0 * sp.out_f, r1 - r0, sp.in_f, sp.out_f,
                    fused(sp.act));
      if (sp.act != PlanAct::relu)
        apply_activation(sp.act, sp.alpha, y + r0 * sp.out_f, (r1 - r0) * op.n, sp.k, sp.beta);
      return;
    }
    case OpKind::pool: {
      // (ceil-mode and dilated windows do not split into bands of their own)
      if (parts == 1 || sp.pool == PlanPool::adaptive_avg || sp.pool == PlanPool::adaptive_max ||
          sp.pool == PlanPool::global_avg || sp.pp.ceil_mode || sp.pp.dilation_h > 1 ||
          sp.pp.dilation_w > 1) {
        if (part != 0) return;
        PoolShape s = sp.ps;
        s.n = n;
        plan_detail::pool_forward(sp.pool, s, sp.pp, sp.count_include_pad, sp.oh, sp.ow, x, y);
        return;
      }
      const int64_t OH = sp.oh, row = sp.ow * sp.ps.c, in_img = sp.ps.h * sp.ps.w * sp.ps.c;
      int64_t u0, u1;
      part_range(n * OH, part, parts, 1, &u0, &u1);
      while (u0 < u1) {
        const int64_t img = u0 / OH, a = u0 % OH, e = std::min(OH, a + (u1 - u0));
        PoolShape ts;
        Pool2dParams tp;
        int64_t first;
        pool_band(sp.ps, sp.pp, a, e, &ts, &tp, &first);
        const float* xb = x + img * in_img + first * sp.ps.w * sp.ps.c;
        float* yb = y + img * op.n + a * row;
        if (sp.pool == PlanPool::max)
          max_pool2d_forward(ts, tp, xb, yb);
        else
          avg_pool2d_forward(ts, tp, sp.count_include_pad, xb, yb);
        u0 += e - a;
      }
      return;
    }
    case OpKind::batch_norm: {
      const int64_t rows = n * op.n / sp.channels;
      int64_t r0, r1;
      part_range(rows, part, parts, 1, &r0, &r1);
      if (r0 >= r1) return;
      batch_norm_forward_eval(x + r0 * sp.channels, sp.bn.gamma, sp.bn.beta, sp.bn.mean,
                              op.inv_std.data(), y + r0 * sp.channels, r1 - r0, sp.channels);
      return;
    }
    case OpKind::activation: {
      // whole softmax groups per part (k divides every boundary)
      int64_t e0, e1;
      part_range(n * op.n, part, parts, grouped_act(sp.act) ? sp.k : 16, &e0, &e1);
      if (e1 > e0)
        plan_detail::activation_forward(sp.act, sp.alpha, x + e0, y + e0, e1 - e0, sp.k, sp.beta);
      return;
    }
    case OpKind::eltwise: {
      int64_t e0, e1;
      part_range(n * op.n, part, parts, grouped_act(sp.act) ? sp.k : 16, &e0, &e1);
      if (e1 <= e0) return;
      const size_t m = sp.in.size();
      const float* stack_in[4];
      std::vector<const float*> heap_in;
      const float** xs = stack_in;
      if (m > 4) {
        heap_in.resize(m);
        xs = heap_in.data();
      }
      for (size_t i = 0; i < m; ++i) xs[i] = buf[sp.in[i]] + e0;
      if (sp.eltwise == EltwiseKind::add && m == 2 && sp.act == PlanAct::relu) {
        // the residual sum: one pass
        const float* a = xs[0];
        const float* c = xs[1];
        float* ys = y + e0;
        for (int64_t i = 0; i < e1 - e0; ++i) ys[i] = std::max(a[i] + c[i], 0.0f);
        return;
      }
      eltwise_forward(sp.eltwise, xs, static_cast<int>(m), y + e0, e1 - e0);
      apply_activation(sp.act, sp.alpha, y + e0, e1 - e0, sp.k, sp.beta);
      return;
    }
    case OpKind::concat: {
      // split by blocks (images x outer)
      const int64_t blocks = n * sp.outer;
      int64_t r0, r1;
      part_range(blocks, part, parts, 1, &r0, &r1);
      if (r0 >= r1) return;
      int64_t row = 0;
      for (int64_t i : sp.inner) row += i;
      std::vector<const float*> xs(sp.in.size());
      for (size_t i = 0; i < xs.size(); ++i) xs[i] = buf[sp.in[i]] + r0 * sp.inner[i];
      concat_forward(xs.data(), static_cast<int>(xs.size()), sp.inner.data(), r1 - r0,
                     y + r0 * row);
      return;
    }
    case OpKind::rescale:
    case OpKind::normalize:
    case OpKind::augment: {  // by images
      int64_t i0, i1;
      part_range(n, part, parts, 1, &i0, &i1);
      if (i0 >= i1) return;
      const int64_t in = op_input_sizes(sp)[0];
      const float* xs = x + i0 * in;
      float* ys = y + i0 * op.n;
      if (sp.kind == OpKind::rescale)
        rescale_forward(xs, ys, (i1 - i0) * in, sp.channels, sp.chan_inner, sp.w, sp.bias);
      else if (sp.kind == OpKind::normalize)
        normalize_forward(xs, ys, (i1 - i0) * in, sp.channels, sp.chan_inner, sp.bn.mean, sp.bn.var,
                          sp.bn.eps);
      else
        augment_forward(sp.aug, xs, ys, i1 - i0, 0, i0, false);
      return;
    }
    case OpKind::conv_transpose2d:
    case OpKind::pad2d:
    case OpKind::upsample2d:
    case OpKind::depth_to_space:
    case OpKind::space_to_depth:
    case OpKind::channel_shuffle:
    case OpKind::transpose: {  // whole images per part
      int64_t i0 = 0, i1 = n;
      if (parts > 1) part_range(n, part, parts, 1, &i0, &i1);
      if (i0 >= i1) return;
      plan_detail::layout_forward(sp, i1 - i0, x + i0 * plan_detail::layout_input_values(sp),
                                  y + i0 * op.n);
      return;
    }
    case OpKind::prelu: {
      // rows of `channels` slopes (one shared slope: rows of one value)
      const int64_t P = sp.channels, rows = n * op.n / P;
      int64_t r0, r1;
      part_range(rows, part, parts, P == 1 ? 16 : 1, &r0, &r1);
      if (r0 < r1) prelu_forward(x + r0 * P, sp.w, y + r0 * P, r1 - r0, P);
      return;
    }
    case OpKind::lrn:
    case OpKind::layer_norm: {
      const int64_t C = sp.channels, rows = n * op.n / C;
      int64_t r0, r1;
      part_range(rows, part, parts, 1, &r0, &r1);
      if (r0 >= r1) return;
      if (sp.kind == OpKind::lrn)
        lrn_forward(x + r0 * C, y + r0 * C, r1 - r0, C, sp.lrn_size, sp.lrn_alpha, sp.lrn_beta,
                    sp.lrn_bias);
      else
        layer_norm_forward(x + r0 * C, sp.w, sp.bias, y + r0 * C, r1 - r0, C, sp.eps, nullptr,
                           nullptr);
      return;
    }
    case OpKind::group_norm: {
      int64_t i0, i1;  // whole images per part
      part_range(n, part, parts, 1, &i0, &i1);
      if (i0 < i1)
        group_norm_forward(x + i0 * op.n, sp.w, sp.bias, y + i0 * op.n, i1 - i0, op.n, sp.channels,
                           sp.groups, sp.eps, nullptr, nullptr);
      return;
    }
    default:
      if (op_is_int8(sp.kind)) {
        plan_detail::run_qop_part(sp, op.n, buf, n, part, parts);
        return;
      }
      throw std::invalid_argument(std::string(op_kind_name(sp.kind)) + ": not run by a plan");
  }
}

}  // namespace cnnx
