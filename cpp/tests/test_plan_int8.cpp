// The int8 ops of an InferencePlan (quantize, qconv2d, qpool, qadd,
// qconcat, qdense, dequantize) against the int8 kernels called one by one
// (tested against scalar references in test_int8.cpp): the same bytes, on
// every ISA, for one image and many, serial, cooperative and split by images.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "cnnx/int8.h"
#include "cnnx/plan.h"
#include "cnnx/threading.h"
#include "cnnx/train_plan.h"
#include "test_util.h"

namespace {

using cnnx::Conv2dShape;
using cnnx::OpKind;
using cnnx::OpSpec;
using cnnx::QActivation;
using cnnx::QOutput;
using cnnx::QuantParams;

std::vector<int8_t> random_int8(size_t n, uint32_t seed) {
  std::vector<int8_t> v(n);
  const auto f = cnnx_test::random_vector(n, seed, -127.f, 127.f);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<int8_t>(f[i]);
  return v;
}

// x (HxHx3) -quantize-> -qconv 3x3 same 8, relu-> a -qmaxpool 2-> p (H/2 x H/2 x 8)
// -qconv 3x3 same 8-> c; s = qadd(c, p) relu; k = qconcat(s, p) (5x5x16, p
// requantised); g = global average of k (16); z = qdense 16->6 (float store)
// (H = 40: large enough for the plan to use two threads, and the
// cooperative mode to split convolutions and pools into bands)
// and d = dequantize(s).
constexpr int64_t H = 40, P = H / 2, X = H * H * 3, A = H * H * 8, S = P * P * 8;

struct QNet {
  Conv2dShape c1, c2;
  QuantParams xq{0.02f, 128}, aq{0.03f, 0}, cq{0.05f, 120}, sq{0.04f, 0}, kq{0.045f, 0},
      gq{0.02f, 3};
  std::vector<int8_t> w1, w2, wd;
  std::vector<float> s1, s2, sd, b1, b2, bd;
  std::vector<int32_t> bacc2;
  cnnx::QPackedWeights p1, p2, pd;
  cnnx::Pool2dParams pool{2, 2, 2, 2, 0, 0, 0, 0};

  QNet() {
    c1.N = 1;
    c1.H = c1.W = H;
    c1.C_in = 3;
    c1.KH = c1.KW = 3;
    c1.C_out = 8;
    c1.pad_top = c1.pad_bottom = c1.pad_left = c1.pad_right = 1;
    c2 = c1;
    c2.H = c2.W = P;
    c2.C_in = 8;
    w1 = random_int8(c1.weight_size(), 1);
    w2 = random_int8(c2.weight_size(), 2);
    wd = random_int8(16 * 6, 3);
    s1 = cnnx_test::random_vector(8, 4, 0.002f, 0.01f);
    s2 = cnnx_test::random_vector(8, 5, 0.002f, 0.01f);
    sd = cnnx_test::random_vector(6, 6, 0.002f, 0.01f);
    b1 = cnnx_test::random_vector(8, 7);
    b2 = cnnx_test::random_vector(8, 8);
    bd = cnnx_test::random_vector(6, 9);
    for (int i = 0; i < 8; ++i) bacc2.push_back((i * 37) % 200 - 100);
    pack();
  }
  void pack() {  // for the active kernel
    p1 = cnnx::qconv2d_pack_weights(c1, w1.data(), s1.data());
    p2 = cnnx::qconv2d_pack_weights(c2, w2.data(), s2.data());
    pd = cnnx::qgemm_pack_weights(16, 6, wd.data(), 6, sd.data());
  }

  cnnx::QEpilogue ep(QuantParams x, const float* b, QActivation act, QOutput out, QuantParams y,
                     const int32_t* bacc = nullptr) const {
    cnnx::QEpilogue e;
    e.x = x;
    e.bias = b;
    e.bias_acc = bacc;
    e.act = act;
    e.out = out;
    e.y = y;
    return e;
  }

  // The kernels one by one: (z: N x 6 floats, d: N x S floats).
  void reference(const std::vector<float>& x, int64_t N, std::vector<float>& z,
                 std::vector<float>& d) const {
    std::vector<uint8_t> xq8(N * X), a(N * A), p(N * S), c(N * S), s(N * S), k(N * 2 * S),
        g(N * 16);
    cnnx::quantize_u8(N * X, x.data(), xq, xq8.data());
    Conv2dShape t1 = c1, t2 = c2;
    t1.N = t2.N = N;
    cnnx::qconv2d_forward(t1, xq8.data(), p1, ep(xq, b1.data(), QActivation::relu, QOutput::u8, aq),
                          a.data());
    cnnx::qmax_pool2d_forward(cnnx::PoolShape{N, H, H, 8}, pool, a.data(), p.data());
    cnnx::qconv2d_forward(t2, p.data(), p2,
                          ep(aq, b2.data(), QActivation::none, QOutput::u8, cq, bacc2.data()),
                          c.data());
    cnnx::qadd(N * S, c.data(), cq, p.data(), aq, sq, QActivation::relu, s.data());
    // concat: both inputs requantised to the output's parameters
    std::vector<float> tmp(8);
    for (int64_t r = 0; r < N * P * P; ++r) {
      cnnx::dequantize_u8(8, s.data() + r * 8, sq, tmp.data());
      cnnx::quantize_u8(8, tmp.data(), kq, k.data() + r * 16);
      cnnx::dequantize_u8(8, p.data() + r * 8, aq, tmp.data());
      cnnx::quantize_u8(8, tmp.data(), kq, k.data() + r * 16 + 8);
    }
    cnnx::qavg_pool2d_forward(cnnx::PoolShape{N, P, P, 16},
                              cnnx::Pool2dParams{P, P, 1, 1, 0, 0, 0, 0}, false, kq, gq, k.data(),
                              g.data());
    z.resize(N * 6);
    cnnx::qgemm(N, g.data(), 16, pd, ep(gq, bd.data(), QActivation::none, QOutput::f32, {}),
                z.data(), 6);
    d.resize(N * S);
    cnnx::dequantize_u8(N * S, s.data(), sq, d.data());
  }

  // buffers: 0 x (X floats), 1 z (6), 2 d (S), then scratch: the plan sizes
  // them in floats (uint8 values take a quarter).
  std::unique_ptr<cnnx::InferencePlan> plan() const {
    // 3 xq8 4 a 5 p 6 c 7 s 8 k 9 g
    auto owner = std::make_unique<cnnx::InferencePlan>(
        std::vector<int64_t>{X, 6, S, X / 4, A / 4, S / 4, S / 4, S / 4, S / 2, 4}, 1, 2);
    cnnx::InferencePlan& pl = *owner;
    OpSpec q;
    q.kind = OpKind::quantize;
    q.in = {0};
    q.out = 3;
    q.count = X;
    q.qout = xq;
    pl.add(q);
    OpSpec k1;
    k1.kind = OpKind::qconv2d;
    k1.in = {3};
    k1.out = 4;
    k1.conv = c1;
    k1.qw = p1;
    k1.bias = b1.data();
    k1.qin = {xq};
    k1.qout = aq;
    k1.qact = QActivation::relu;
    pl.add(k1);
    OpSpec mp;
    mp.kind = OpKind::qpool;
    mp.in = {4};
    mp.out = 5;
    mp.pool = cnnx::PlanPool::max;
    mp.ps = cnnx::PoolShape{1, H, H, 8};
    mp.pp = pool;
    mp.qin = {aq};
    pl.add(mp);
    OpSpec k2;
    k2.kind = OpKind::qconv2d;
    k2.in = {5};
    k2.out = 6;
    k2.conv = c2;
    k2.qw = p2;
    k2.bias = b2.data();
    k2.qbias = bacc2.data();
    k2.qin = {aq};
    k2.qout = cq;
    pl.add(k2);
    OpSpec ad;
    ad.kind = OpKind::qadd;
    ad.in = {6, 5};
    ad.out = 7;
    ad.count = S;
    ad.qin = {cq, aq};
    ad.qout = sq;
    ad.qact = QActivation::relu;
    pl.add(ad);
    OpSpec cc;
    cc.kind = OpKind::qconcat;
    cc.in = {7, 5};
    cc.out = 8;
    cc.outer = P * P;
    cc.inner = {8, 8};
    cc.qin = {sq, aq};
    cc.qout = kq;
    pl.add(cc);
    OpSpec ga;
    ga.kind = OpKind::qpool;
    ga.in = {8};
    ga.out = 9;
    ga.pool = cnnx::PlanPool::global_avg;
    ga.ps = cnnx::PoolShape{1, P, P, 16};
    ga.qin = {kq};
    ga.qout = gq;
    pl.add(ga);
    OpSpec de;
    de.kind = OpKind::qdense;
    de.in = {9};
    de.out = 1;
    de.in_f = 16;
    de.out_f = 6;
    de.qw = pd;
    de.bias = bd.data();
    de.qin = {gq};
    de.qstore = QOutput::f32;
    pl.add(de);
    OpSpec dq;
    dq.kind = OpKind::dequantize;
    dq.in = {7};
    dq.out = 2;
    dq.count = S;
    dq.qin = {sq};
    pl.add(dq);
    return owner;
  }
};

TEST(InferencePlanInt8, MatchesKernelsBitForBit) {
  const int saved_threads = cnnx::get_num_threads();
  cnnx::set_num_threads(2);
  for (cnnx::Isa isa : cnnx_test::supported_isas()) {
    cnnx_test::IsaScope scope(isa);
    QNet net;
    auto owner = net.plan();
    cnnx::InferencePlan& pl = *owner;
    for (int64_t N : {1, 3, 8}) {
      // a new input for each mode: the plan's scratch arena still holds the
      // last run's values, which must not pass for this run's
      for (int mode : {1, 0, -1}) {
        const auto x = cnnx_test::random_vector(N * X, 100 + 7 * N + mode, -2.f, 2.f);
        std::vector<float> z_ref, d_ref;
        net.reference(x, N, z_ref, d_ref);
        pl.set_small_batch_mode(mode);
        std::vector<float> z(N * 6, -7.f), d(N * S, -7.f);
        const float* xs[] = {x.data()};
        float* ys[] = {z.data(), d.data()};
        pl.run(xs, N, ys);
        ASSERT_EQ(0, std::memcmp(z.data(), z_ref.data(), z.size() * 4))
            << "isa " << static_cast<int>(isa) << " N=" << N << " mode " << mode;
        ASSERT_EQ(0, std::memcmp(d.data(), d_ref.data(), d.size() * 4))
            << "isa " << static_cast<int>(isa) << " N=" << N << " mode " << mode;
      }
    }
  }
  cnnx::set_num_threads(saved_threads);
}

TEST(InferencePlanInt8, RejectsBadOps) {
  QNet net;
  cnnx::InferencePlan pl({300, 6, 75, 200}, 1, 1);
  OpSpec q;
  q.kind = OpKind::quantize;
  q.in = {0};
  q.out = 2;
  q.count = 300;
  q.qout = {0.0f, 0};
  EXPECT_THROW(pl.add(q), std::invalid_argument);  // scale 0
  q.qout = {0.1f, 300};
  EXPECT_THROW(pl.add(q), std::invalid_argument);  // zero point out of range
  q.qout = {0.1f, 3};
  q.count = 301;
  EXPECT_THROW(pl.add(q), std::invalid_argument);  // needs 76 floats, buffer 2 has 75
  OpSpec k;
  k.kind = OpKind::qconv2d;
  k.in = {2};
  k.out = 3;
  k.conv = net.c2;
  k.qw = net.p1;
  k.qin = {{0.1f, 0}};
  k.qout = {0.1f, 0};
  EXPECT_THROW(pl.add(k), std::invalid_argument);  // weights packed for another filter
  k.qw = cnnx::QPackedWeights();
  EXPECT_THROW(pl.add(k), std::invalid_argument);  // no weights
  OpSpec a;
  a.kind = OpKind::qadd;
  a.in = {2, 2};
  a.out = 3;
  a.count = 300;
  a.qin = {{0.1f, 0}};
  a.qout = {0.1f, 0};
  EXPECT_THROW(pl.add(a), std::invalid_argument);  // one quantisation per input
}

TEST(InferencePlanInt8, TrainPlanRefusesInt8Ops) {
  std::vector<float> grads(16);
  cnnx::TrainPlan tp({300, 300}, 1, grads.data(), 16);
  OpSpec q;
  q.kind = OpKind::quantize;
  q.in = {0};
  q.out = 1;
  q.count = 300;
  q.qout = {0.1f, 3};
  EXPECT_THROW(tp.add(q), std::invalid_argument);
}

}  // namespace
