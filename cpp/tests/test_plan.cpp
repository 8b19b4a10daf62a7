// InferencePlan and TrainPlan against the kernels called one by one (which
// their own tests check against scalar references): the LeNet-style chain
// conv+ReLU -> max pool -> conv -> residual add -> global average -> dense,
// with batch norm folded, on every ISA, serial, batch-split and cooperative.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "cnnx/activation.h"
#include "cnnx/dense.h"
#include "cnnx/loss.h"
#include "cnnx/norm.h"
#include "cnnx/plan.h"
#include "cnnx/threading.h"
#include "cnnx/train_plan.h"
#include "test_util.h"

namespace {

using cnnx::Conv2dShape;

struct Net {
  // x (12x12x3) -conv 3x3 same 8, relu-> a (12x12x8) -maxpool 2-> p (6x6x8)
  // -conv 3x3 same 8-> c (6x6x8); r = relu(c + p); g = global avg (8); z = dense 8->5
  Conv2dShape c1, c2;
  cnnx::PoolShape ps{1, 12, 12, 8};
  cnnx::Pool2dParams pp{2, 2, 2, 2, 0, 0, 0, 0};
  std::vector<float> w1, b1, w2, b2, wd, bd;
  Net() {
    c1.N = 1;
    c1.H = c1.W = 12;
    c1.C_in = 3;
    c1.KH = c1.KW = 3;
    c1.C_out = 8;
    c1.pad_top = c1.pad_bottom = c1.pad_left = c1.pad_right = 1;
    c2 = c1;
    c2.H = c2.W = 6;
    c2.C_in = 8;
    w1 = cnnx_test::random_vector(c1.weight_size(), 1, -0.5f, 0.5f);
    b1 = cnnx_test::random_vector(8, 2);
    w2 = cnnx_test::random_vector(c2.weight_size(), 3, -0.3f, 0.3f);
    b2 = cnnx_test::random_vector(8, 4);
    wd = cnnx_test::random_vector(8 * 5, 5);
    bd = cnnx_test::random_vector(5, 6);
  }
  // The reference forward, kernel by kernel; keeps every value.
  std::vector<std::vector<float>> forward(const std::vector<float>& x, int64_t N, const float* w2f,
                                          const float* b2f) const {
    std::vector<std::vector<float>> v(6);
    Conv2dShape s1 = c1, s2 = c2;
    s1.N = s2.N = N;
    v[0].resize(N * 12 * 12 * 8);
    cnnx::conv2d_forward(s1, x.data(), w1.data(), b1.data(), v[0].data(), cnnx::Activation::relu);
    cnnx::PoolShape p = ps;
    p.n = N;
    v[1].resize(N * 6 * 6 * 8);
    cnnx::max_pool2d_forward(p, pp, v[0].data(), v[1].data());
    v[2].resize(N * 6 * 6 * 8);
    cnnx::conv2d_forward(s2, v[1].data(), w2f, b2f, v[2].data(), cnnx::Activation::none);
    v[3].resize(v[2].size());
    for (size_t i = 0; i < v[3].size(); ++i) v[3][i] = std::max(v[2][i] + v[1][i], 0.0f);
    v[4].resize(N * 8);
    cnnx::global_avg_pool2d_forward(cnnx::PoolShape{N, 6, 6, 8}, v[3].data(), v[4].data());
    v[5].resize(N * 5);
    cnnx::dense_forward(v[4].data(), wd.data(), bd.data(), v[5].data(), N, 8, 5);
    return v;
  }
};

void expect_close(const std::vector<float>& a, const std::vector<float>& b, float tol) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    ASSERT_NEAR(a[i], b[i], tol * (1.0f + std::fabs(b[i]))) << "at " << i;
}

TEST(InferencePlan, MatchesKernelsWithBatchNormFolded) {
  Net net;
  const std::vector<float> gamma = cnnx_test::random_vector(8, 7, 0.5f, 1.5f),
                           beta = cnnx_test::random_vector(8, 8),
                           mean = cnnx_test::random_vector(8, 9),
                           var = cnnx_test::random_vector(8, 10, 0.5f, 2.0f);
  const float eps = 1e-3f;
  // The reference folds by hand: w2' = w2 * s, b2' = (b2 - mean) * s + beta.
  std::vector<float> w2f(net.w2.size()), b2f(8);
  for (size_t i = 0; i < w2f.size(); ++i) {
    const int c = static_cast<int>(i % 8);
    w2f[i] = net.w2[i] * gamma[c] / std::sqrt(var[c] + eps);
  }
  for (int c = 0; c < 8; ++c)
    b2f[c] = (net.b2[c] - mean[c]) * gamma[c] / std::sqrt(var[c] + eps) + beta[c];
  // buffers: 0 in, 1 out, 2 conv1, 3 pool, 4 conv2, 5 add, 6 gap
  cnnx::InferencePlan plan({12 * 12 * 3, 5, 12 * 12 * 8, 6 * 6 * 8, 6 * 6 * 8, 6 * 6 * 8, 8});
  cnnx::BatchNormSpec bn;
  bn.gamma = gamma.data();
  bn.beta = beta.data();
  bn.mean = const_cast<float*>(mean.data());
  bn.var = const_cast<float*>(var.data());
  bn.eps = eps;
  auto conv2 = [&](int in, int out, cnnx::PlanAct act) {
    cnnx::OpSpec op = cnnx::conv_op(in, out, net.c2, net.w2.data(), net.b2.data(), act);
    op.has_bn = true;
    op.bn = bn;
    return op;
  };
  plan.add(cnnx::conv_op(0, 2, net.c1, net.w1.data(), net.b1.data(), cnnx::PlanAct::relu));
  plan.add(cnnx::pool_op(2, 3, cnnx::PlanPool::max, net.ps, net.pp));
  plan.add(conv2(3, 4, cnnx::PlanAct::none));
  plan.add(cnnx::eltwise_op({4, 3}, 5, 6 * 6 * 8, cnnx::EltwiseKind::add, cnnx::PlanAct::relu));
  plan.add(cnnx::pool_op(5, 6, cnnx::PlanPool::global_avg, cnnx::PoolShape{1, 6, 6, 8}, net.pp));
  plan.add(cnnx::dense_op(6, 1, 8, 5, net.wd.data(), net.bd.data()));
  // The same network with the residual sum fused into conv2's store.
  cnnx::InferencePlan fused({12 * 12 * 3, 5, 12 * 12 * 8, 6 * 6 * 8, 6 * 6 * 8, 8});
  fused.add(cnnx::conv_op(0, 2, net.c1, net.w1.data(), net.b1.data(), cnnx::PlanAct::relu));
  fused.add(cnnx::pool_op(2, 3, cnnx::PlanPool::max, net.ps, net.pp));
  cnnx::OpSpec with_residual = conv2(3, 4, cnnx::PlanAct::relu);
  with_residual.in.push_back(3);
  fused.add(with_residual);
  fused.add(cnnx::pool_op(4, 5, cnnx::PlanPool::global_avg, cnnx::PoolShape{1, 6, 6, 8}, net.pp));
  fused.add(cnnx::dense_op(5, 1, 8, 5, net.wd.data(), net.bd.data()));
  const int saved = cnnx::get_num_threads();
  for (cnnx::Isa isa : cnnx_test::supported_isas()) {
    cnnx_test::IsaScope scope(isa);
    for (int threads : {1, 2}) {
      cnnx::set_num_threads(threads);
      for (int mode : {0, 1}) {
        plan.set_small_batch_mode(mode);
        fused.set_small_batch_mode(mode);
        for (int64_t N : {1, 3, 40}) {
          const std::vector<float> x = cnnx_test::random_vector(N * 12 * 12 * 3, 11 + N);
          const auto ref = net.forward(x, N, w2f.data(), b2f.data());
          std::vector<float> y(N * 5, NAN), yf(N * 5, NAN);
          plan.run(x.data(), N, y.data());
          expect_close(y, ref[5], 2e-5f);
          fused.run(x.data(), N, yf.data());
          expect_close(yf, ref[5], 2e-5f);
        }
      }
    }
  }
  cnnx::set_num_threads(saved);
}

// The plan's padded 3x3 kernel (16/32 input channels, AVX-512) against
// conv2d_forward, with tiles that overrun the row and asymmetric padding.
TEST(InferencePlan, Padded3x3MatchesConvForward) {
  struct Case {
    int64_t H, W, C, K, stride, pt, pb, pl, pr, F = 3;
  };
  const Case cases[] = {{9, 17, 32, 16, 2, 2, 0, 1, 2},    {30, 29, 16, 16, 1, 1, 1, 1, 1},
                        {7, 7, 32, 32, 1, 1, 1, 1, 1},     {14, 14, 16, 48, 2, 0, 1, 0, 1},
                        {5, 31, 16, 16, 1, 0, 0, 0, 0},    {28, 28, 1, 16, 1, 1, 1, 1, 1},
                        {9, 30, 1, 32, 1, 0, 2, 2, 1},     {14, 14, 8, 16, 1, 0, 0, 0, 0, 5},
                        {13, 23, 8, 32, 1, 2, 2, 2, 2, 5}, {14, 14, 16, 32, 2, 0, 0, 0, 0, 1},
                        {9, 13, 32, 16, 2, 0, 0, 0, 0, 1}};
  for (const Case& c : cases) {
    Conv2dShape s;
    s.N = 1;
    s.H = c.H;
    s.W = c.W;
    s.C_in = c.C;
    s.KH = s.KW = c.F;
    s.C_out = c.K;
    s.stride_h = s.stride_w = c.stride;
    s.pad_top = c.pt;
    s.pad_bottom = c.pb;
    s.pad_left = c.pl;
    s.pad_right = c.pr;
    const std::vector<float> w = cnnx_test::random_vector(s.weight_size(), 31, -0.3f, 0.3f);
    const std::vector<float> b = cnnx_test::random_vector(c.K, 32);
    const int64_t in = s.H * s.W * s.C_in, out = s.out_h() * s.out_w() * s.C_out;
    cnnx::InferencePlan plan({in, out});
    plan.add(cnnx::conv_op(0, 1, s, w.data(), b.data(), cnnx::PlanAct::relu));
    for (cnnx::Isa isa : cnnx_test::supported_isas()) {
      cnnx_test::IsaScope scope(isa);
      for (int64_t N : {1, 3}) {
        const std::vector<float> x = cnnx_test::random_vector(N * in, 33 + N);
        Conv2dShape sn = s;
        sn.N = N;
        std::vector<float> ref(N * out), y(N * out, NAN);
        cnnx::conv2d_forward(sn, x.data(), w.data(), b.data(), ref.data(), cnnx::Activation::relu);
        plan.run(x.data(), N, y.data());
        expect_close(y, ref, 2e-5f);
      }
    }
  }
}

TEST(InferencePlan, RejectsBadOps) {
  cnnx::InferencePlan plan({12, 16, 16});
  Conv2dShape s;
  s.H = s.W = 2;
  s.C_in = 3;
  s.C_out = 4;
  std::vector<float> w(12, 1.0f);
  EXPECT_THROW(plan.add(cnnx::conv_op(0, 0, s, w.data(), nullptr)), std::invalid_argument);
  EXPECT_THROW(plan.add(cnnx::conv_op(0, 9, s, w.data(), nullptr)), std::invalid_argument);
  EXPECT_THROW(plan.add(cnnx::activation_op(0, 1, 12, cnnx::PlanAct::softmax, 0, 5)),
               std::invalid_argument);
  EXPECT_THROW(plan.add(cnnx::eltwise_op({0, 0, 0}, 1, 12, cnnx::EltwiseKind::sub)),
               std::invalid_argument);
  EXPECT_THROW(plan.add(cnnx::concat_op({0}, 1, 2, {7})), std::invalid_argument);
}

TEST(TrainPlan, GradientsMatchKernelsAndSplitsAgree) {
  Net net;
  // values: 0 x, 1 conv1, 2 pool, 3 conv2, 4 add, 5 gap, 6 logits
  const std::vector<int64_t> sizes = {12 * 12 * 3, 12 * 12 * 8, 6 * 6 * 8, 6 * 6 * 8,
                                      6 * 6 * 8,   8,           5};
  const int64_t n1 = net.w1.size(), n2 = net.w2.size();
  const int64_t o_w1 = 0, o_b1 = n1, o_w2 = n1 + 8, o_b2 = n1 + 8 + n2, o_wd = o_b2 + 8,
                o_bd = o_wd + 40, total = o_bd + 5;
  std::vector<float> grads(total, NAN);
  cnnx::TrainPlan plan(sizes, 1, grads.data(), total);
  auto with_grads = [&](cnnx::OpSpec op, int64_t dw, int64_t db) {
    op.dw = grads.data() + dw;
    op.db = grads.data() + db;
    return op;
  };
  plan.add(with_grads(
      cnnx::conv_op(0, 1, net.c1, net.w1.data(), net.b1.data(), cnnx::PlanAct::relu), o_w1, o_b1));
  plan.add(cnnx::pool_op(1, 2, cnnx::PlanPool::max, net.ps, net.pp));
  plan.add(with_grads(cnnx::conv_op(2, 3, net.c2, net.w2.data(), net.b2.data()), o_w2, o_b2));
  plan.add(cnnx::eltwise_op({3, 2}, 4, 6 * 6 * 8, cnnx::EltwiseKind::add, cnnx::PlanAct::relu));
  plan.add(cnnx::pool_op(4, 5, cnnx::PlanPool::global_avg, cnnx::PoolShape{1, 6, 6, 8}, net.pp));
  plan.add(with_grads(cnnx::dense_op(5, 6, 8, 5, net.wd.data(), net.bd.data()), o_wd, o_bd));
  plan.add_loss(cnnx::LossSpec{cnnx::LossKind::softmax_cross_entropy, 6, 0, 1.0f});
  plan.set_outputs({6});
  const int64_t N = 10;
  const std::vector<float> x = cnnx_test::random_vector(N * 12 * 12 * 3, 21);
  std::vector<int64_t> labels(N);
  for (int64_t i = 0; i < N; ++i) labels[i] = (i * 3) % 5;
  auto step = [&](const int64_t* y, float* logits) {
    const float* xs[] = {x.data()};
    const void* ts[] = {y};
    float* outs[] = {logits};
    return plan.step(xs, ts, nullptr, N, outs, nullptr);
  };

  // Reference backward, kernel by kernel.
  const auto v = net.forward(x, N, net.w2.data(), net.b2.data());
  std::vector<float> dz(N * 5);
  const double ref_loss = cnnx::softmax_cross_entropy(v[5].data(), labels.data(), N, 5, dz.data());
  std::vector<float> dwd(40), dbd(5), dg(N * 8);
  cnnx::dense_backward(dz.data(), v[4].data(), net.wd.data(), dg.data(), dwd.data(), dbd.data(), N,
                       8, 5);
  std::vector<float> dr(N * 288), dsum(N * 288);
  cnnx::global_avg_pool2d_backward(cnnx::PoolShape{N, 6, 6, 8}, dg.data(), dr.data());
  cnnx::relu_backward(dr.data(), v[3].data(), dsum.data(), N * 288);
  Conv2dShape s1 = net.c1, s2 = net.c2;
  s1.N = s2.N = N;
  std::vector<float> dw2(n2), db2(8), dp(N * 288);
  cnnx::conv2d_backward_weights(s2, dsum.data(), v[1].data(), dw2.data(), db2.data());
  cnnx::conv2d_backward_data(s2, dsum.data(), net.w2.data(), dp.data());
  for (int64_t i = 0; i < N * 288; ++i) dp[i] += dsum[i];  // the skip path
  std::vector<float> da(N * 12 * 12 * 8), dw1(n1), db1(8);
  cnnx::PoolShape pN = net.ps;
  pN.n = N;
  cnnx::max_pool2d_backward(pN, net.pp, v[0].data(), dp.data(), da.data());
  cnnx::relu_backward(da.data(), v[0].data(), da.data(), da.size());
  cnnx::conv2d_backward_weights(s1, da.data(), x.data(), dw1.data(), db1.data());

  const int saved = cnnx::get_num_threads();
  for (cnnx::Isa isa : cnnx_test::supported_isas()) {
    cnnx_test::IsaScope scope(isa);
    for (int threads : {1, 2}) {
      cnnx::set_num_threads(threads);
      std::fill(grads.begin(), grads.end(), NAN);
      std::vector<float> logits(N * 5);
      const double loss = step(labels.data(), logits.data());
      EXPECT_NEAR(loss, ref_loss, 1e-5 * (1 + std::fabs(ref_loss)));
      expect_close(logits, v[5], 1e-4f);
      auto slice = [&](int64_t off, int64_t n) {
        return std::vector<float>(grads.begin() + off, grads.begin() + off + n);
      };
      expect_close(slice(o_wd, 40), dwd, 1e-4f);
      expect_close(slice(o_bd, 5), dbd, 1e-4f);
      expect_close(slice(o_w2, n2), dw2, 1e-3f);
      expect_close(slice(o_b2, 8), db2, 1e-3f);
      expect_close(slice(o_w1, n1), dw1, 1e-3f);
      expect_close(slice(o_b1, 8), db1, 1e-3f);
    }
  }
  cnnx::set_num_threads(saved);
  std::vector<int64_t> bad(N, 0);
  bad[3] = 5;
  std::vector<float> logits(N * 5);
  EXPECT_THROW(step(bad.data(), logits.data()), std::invalid_argument);
}

TEST(TrainPlan, BatchNormMatchesKernels) {
  // x (6x6x4) -conv 3x3 valid 8-> a (4x4x8) -bn-> b -relu-> r -gap-> g (8) -dense-> z (3)
  Conv2dShape s;
  s.N = 1;
  s.H = s.W = 6;
  s.C_in = 4;
  s.KH = s.KW = 3;
  s.C_out = 8;
  const std::vector<float> w = cnnx_test::random_vector(s.weight_size(), 41, -0.4f, 0.4f);
  const std::vector<float> gamma = cnnx_test::random_vector(8, 42, 0.5f, 1.5f);
  const std::vector<float> beta = cnnx_test::random_vector(8, 43);
  const std::vector<float> wd = cnnx_test::random_vector(8 * 3, 44);
  const int64_t N = 5, nw = s.weight_size();
  const std::vector<float> x = cnnx_test::random_vector(N * 144, 45);
  std::vector<int64_t> labels = {0, 2, 1, 1, 0};
  const int64_t o_w = 0, o_g = nw, o_b = nw + 8, o_d = nw + 16, total = nw + 16 + 24;
  std::vector<float> grads(total, NAN), rm(8, 0.0f), rv(8, 1.0f), rm2(8, 0.0f), rv2(8, 1.0f);
  cnnx::TrainPlan plan({144, 128, 128, 128, 8, 3}, 1, grads.data(), total);
  cnnx::OpSpec conv = cnnx::conv_op(0, 1, s, w.data(), nullptr);
  conv.dw = grads.data() + o_w;
  plan.add(conv);
  cnnx::BatchNormSpec bn;
  bn.gamma = gamma.data();
  bn.beta = beta.data();
  bn.mean = rm.data();
  bn.var = rv.data();
  bn.eps = 1e-3f;
  bn.momentum = 0.1f;
  bn.dgamma = grads.data() + o_g;
  bn.dbeta = grads.data() + o_b;
  plan.add(cnnx::batch_norm_op(1, 2, 128, 8, bn));
  plan.add(cnnx::activation_op(2, 3, 128, cnnx::PlanAct::relu, 0.0f, 8));
  plan.add(cnnx::pool_op(3, 4, cnnx::PlanPool::global_avg, cnnx::PoolShape{1, 4, 4, 8},
                         cnnx::Pool2dParams{1, 1, 1, 1, 0, 0, 0, 0}));
  cnnx::OpSpec dense = cnnx::dense_op(4, 5, 8, 3, wd.data(), nullptr);
  dense.dw = grads.data() + o_d;
  plan.add(dense);
  plan.add_loss(cnnx::LossSpec{cnnx::LossKind::softmax_cross_entropy, 5, 0, 1.0f});
  plan.set_outputs({5});
  std::vector<float> logits(N * 3);
  const float* xs[] = {x.data()};
  const void* ts[] = {labels.data()};
  float* outs[] = {logits.data()};
  const double loss = plan.step(xs, ts, nullptr, N, outs, nullptr);

  // The reference, kernel by kernel.
  Conv2dShape sn = s;
  sn.N = N;
  std::vector<float> a(N * 128), b(N * 128), r(N * 128), g(N * 8), z(N * 3), mean(8), inv(8);
  cnnx::conv2d_forward(sn, x.data(), w.data(), nullptr, a.data(), cnnx::Activation::none);
  cnnx::batch_norm_forward_train(a.data(), gamma.data(), beta.data(), b.data(), N * 16, 8, 1e-3f,
                                 0.1f, rm2.data(), rv2.data(), mean.data(), inv.data());
  cnnx::relu_forward(b.data(), r.data(), N * 128);
  cnnx::global_avg_pool2d_forward(cnnx::PoolShape{N, 4, 4, 8}, r.data(), g.data());
  cnnx::dense_forward(g.data(), wd.data(), nullptr, z.data(), N, 8, 3);
  std::vector<float> dz(N * 3), dg(N * 8), dwd(24), dr(N * 128), db_(N * 128), da(N * 128);
  std::vector<float> dgamma(8), dbeta(8), dw(nw);
  const double ref_loss = cnnx::softmax_cross_entropy(z.data(), labels.data(), N, 3, dz.data());
  cnnx::dense_backward(dz.data(), g.data(), wd.data(), dg.data(), dwd.data(), nullptr, N, 8, 3);
  cnnx::global_avg_pool2d_backward(cnnx::PoolShape{N, 4, 4, 8}, dg.data(), dr.data());
  cnnx::relu_backward(dr.data(), b.data(), db_.data(), N * 128);
  cnnx::batch_norm_backward(db_.data(), a.data(), gamma.data(), mean.data(), inv.data(), da.data(),
                            dgamma.data(), dbeta.data(), N * 16, 8, true);
  cnnx::conv2d_backward_weights(sn, da.data(), x.data(), dw.data(), nullptr);

  EXPECT_NEAR(loss, ref_loss, 1e-5 * (1 + std::fabs(ref_loss)));
  expect_close(logits, z, 1e-4f);
  expect_close(rm, rm2, 1e-5f);
  expect_close(rv, rv2, 1e-5f);
  auto slice = [&](int64_t off, int64_t n) {
    return std::vector<float>(grads.begin() + off, grads.begin() + off + n);
  };
  expect_close(slice(o_w, nw), dw, 1e-3f);
  expect_close(slice(o_g, 8), dgamma, 1e-3f);
  expect_close(slice(o_b, 8), dbeta, 1e-3f);
  expect_close(slice(o_d, 24), dwd, 1e-4f);
}

}  // namespace
