// Layout ops (cnnx/layout.h) and the transposed convolution
// (cnnx/conv_transpose.h) against naive loops, on every ISA level.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "cnnx/conv_transpose.h"
#include "cnnx/layout.h"
#include "test_util.h"

namespace {

using cnnx_test::all_close;
using cnnx_test::IsaScope;
using cnnx_test::random_vector;
using cnnx_test::supported_isas;

// ---- transposed convolution -------------------------------------------------------------
struct CtCase {
  int64_t N, H, W, Ci, K, Co, s, d, pt, pb, op, groups;
};

void naive_ct(const cnnx::ConvTranspose2dShape& s, const float* x, const float* w, const float* b,
              std::vector<double>& y) {
  const int64_t OH = s.out_h(), OW = s.out_w(), cig = s.C_in / s.groups, cog = s.C_out / s.groups;
  y.assign(static_cast<size_t>(s.N * OH * OW * s.C_out), 0.0);
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t iy = 0; iy < s.H; ++iy)
      for (int64_t ix = 0; ix < s.W; ++ix)
        for (int64_t kh = 0; kh < s.KH; ++kh)
          for (int64_t kw = 0; kw < s.KW; ++kw) {
            const int64_t oy = iy * s.stride_h - s.pad_top + kh * s.dilation_h;
            const int64_t ox = ix * s.stride_w - s.pad_left + kw * s.dilation_w;
            if (oy < 0 || oy >= OH || ox < 0 || ox >= OW) continue;
            for (int64_t ci = 0; ci < s.C_in; ++ci) {
              const int64_t g = ci / cig;
              const double xv = x[((n * s.H + iy) * s.W + ix) * s.C_in + ci];
              for (int64_t co = 0; co < cog; ++co)
                y[((n * OH + oy) * OW + ox) * s.C_out + g * cog + co] +=
                    xv * w[((kh * s.KW + kw) * cog + co) * s.C_in + ci];
            }
          }
  if (b)
    for (size_t i = 0; i < y.size(); ++i) y[i] += b[i % s.C_out];
}

TEST(ConvTranspose, ForwardAndBackwardMatchNaive) {
  const CtCase cases[] = {
      {2, 5, 4, 6, 2, 4, 2, 1, 0, 0, 0, 1},  // U-Net 2x2 stride 2
      {2, 5, 5, 8, 3, 6, 2, 1, 1, 1, 1, 1},  // 3x3 s2 p1 op1
      {1, 4, 6, 4, 3, 4, 1, 1, 1, 1, 0, 1},  // stride 1 ("same")
      {2, 3, 4, 6, 3, 9, 3, 2, 2, 1, 2, 3},  // groups, dilation, asymmetric pads
      {1, 3, 3, 2, 2, 3, 1, 3, 0, 0, 2, 1},  // output padding past the stride (dilation 3)
      {1, 4, 3, 4, 3, 4, 2, 1, 0, 0, 1, 4},  // depthwise-like groups
  };
  for (const CtCase& c : cases) {
    cnnx::ConvTranspose2dShape s;
    s.N = c.N;
    s.H = c.H;
    s.W = c.W;
    s.C_in = c.Ci;
    s.KH = s.KW = c.K;
    s.C_out = c.Co;
    s.stride_h = s.stride_w = c.s;
    s.dilation_h = s.dilation_w = c.d;
    s.pad_top = s.pad_left = c.pt;
    s.pad_bottom = s.pad_right = c.pb;
    s.out_pad_h = s.out_pad_w = c.op;
    s.groups = c.groups;
    ASSERT_STREQ(cnnx::conv_transpose2d_check(s), "");
    const auto x = random_vector(s.input_size(), 1), w = random_vector(s.weight_size(), 2),
               b = random_vector(s.C_out, 3), dy = random_vector(s.output_size(), 4);
    std::vector<double> want;
    naive_ct(s, x.data(), w.data(), b.data(), want);
    // dx[i] = sum dy * w along the same taps; dw likewise: from the naive forward's linearity
    std::vector<double> dx_want(x.size(), 0.0), dw_want(w.size(), 0.0), db_want(s.C_out, 0.0);
    {
      std::vector<float> e(x.size(), 0.0f);
      std::vector<double> yy;
      for (size_t i = 0; i < x.size(); ++i) {  // dx_i = <dy, conv_t(e_i, w)>
        e[i] = 1.0f;
        naive_ct(s, e.data(), w.data(), nullptr, yy);
        double acc = 0;
        for (size_t j = 0; j < yy.size(); ++j) acc += yy[j] * dy[j];
        dx_want[i] = acc;
        e[i] = 0.0f;
      }
      std::vector<float> ew(w.size(), 0.0f);
      for (size_t i = 0; i < w.size(); ++i) {
        ew[i] = 1.0f;
        naive_ct(s, x.data(), ew.data(), nullptr, yy);
        double acc = 0;
        for (size_t j = 0; j < yy.size(); ++j) acc += yy[j] * dy[j];
        dw_want[i] = acc;
        ew[i] = 0.0f;
      }
      for (size_t j = 0; j < dy.size(); ++j) db_want[j % s.C_out] += dy[j];
    }
    std::vector<float> wf(want.begin(), want.end()), dxf(dx_want.begin(), dx_want.end()),
        dwf(dw_want.begin(), dw_want.end()), dbf(db_want.begin(), db_want.end());
    for (cnnx::Isa isa : supported_isas()) {
      IsaScope scope(isa);
      std::vector<float> y(s.output_size(), 7.0f), dx(x.size(), 7.0f), dw(w.size(), 7.0f),
          db(s.C_out, 7.0f);
      cnnx::conv_transpose2d_forward(s, x.data(), w.data(), b.data(), y.data());
      EXPECT_TRUE(all_close(y.data(), wf.data(), y.size(), 1e-4f, 1e-4f)) << "isa " << int(isa);
      cnnx::conv_transpose2d_backward_data(s, dy.data(), w.data(), dx.data());
      EXPECT_TRUE(all_close(dx.data(), dxf.data(), dx.size(), 1e-4f, 1e-4f));
      cnnx::conv_transpose2d_backward_weights(s, dy.data(), x.data(), dw.data(), db.data());
      EXPECT_TRUE(all_close(dw.data(), dwf.data(), dw.size(), 1e-4f, 1e-4f));
      EXPECT_TRUE(all_close(db.data(), dbf.data(), db.size(), 1e-4f, 1e-4f));
      cnnx::conv_transpose2d_forward(s, x.data(), w.data(), b.data(), y.data(),
                                     cnnx::Activation::relu);
      for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], std::max(wf[i], 0.0f), 1e-4f);
    }
  }
}

TEST(ConvTranspose, RejectsBadShapes) {
  cnnx::ConvTranspose2dShape s;
  s.N = 1;
  s.H = s.W = 4;
  s.C_in = 4;
  s.C_out = 4;
  s.KH = s.KW = 3;
  s.stride_h = s.stride_w = 2;
  s.out_pad_h = 2;  // not below the stride nor the dilation
  EXPECT_STRNE(cnnx::conv_transpose2d_check(s), "");
  std::vector<float> x(64), w(144), y(1000);
  EXPECT_THROW(cnnx::conv_transpose2d_forward(s, x.data(), w.data(), nullptr, y.data()),
               std::invalid_argument);
  s.out_pad_h = 1;
  s.groups = 3;
  EXPECT_STRNE(cnnx::conv_transpose2d_check(s), "");
}

// ---- padding ------------------------------------------------------------------------------
int64_t src_index(cnnx::PadMode m, int64_t i, int64_t n) {
  if (i >= 0 && i < n) return i;
  if (m == cnnx::PadMode::reflect) return i < 0 ? -i : 2 * (n - 1) - i;
  if (m == cnnx::PadMode::edge) return i < 0 ? 0 : n - 1;
  return -1;
}

TEST(Pad2d, ForwardAndBackwardMatchNaive) {
  struct P {
    cnnx::PadMode m;
    int64_t t, b, l, r;
  };
  const P cases[] = {{cnnx::PadMode::constant, 1, 2, 3, 0},
                     {cnnx::PadMode::constant, -1, 2, -2, -1},  // crop and pad
                     {cnnx::PadMode::reflect, 2, 3, 3, 1},
                     {cnnx::PadMode::edge, 3, 0, 1, 5},
                     {cnnx::PadMode::reflect, 0, 0, 0, 0}};
  for (int64_t C : {1, 3, 17}) {
    for (const P& p : cases) {
      cnnx::Pad2dShape s;
      s.N = 2;
      s.H = 4;
      s.W = 5;
      s.C = C;
      s.top = p.t;
      s.bottom = p.b;
      s.left = p.l;
      s.right = p.r;
      ASSERT_STREQ(cnnx::pad2d_check(p.m, s), "");
      const int64_t OH = s.out_h(), OW = s.out_w();
      const auto x = random_vector(s.N * s.H * s.W * C, 5);
      const auto dy = random_vector(s.N * OH * OW * C, 6);
      std::vector<float> want(dy.size()), dwant(x.size(), 0.0f);
      for (int64_t n = 0; n < s.N; ++n)
        for (int64_t oy = 0; oy < OH; ++oy)
          for (int64_t ox = 0; ox < OW; ++ox)
            for (int64_t c = 0; c < C; ++c) {
              const int64_t iy = src_index(p.m, oy - s.top, s.H),
                            ix = src_index(p.m, ox - s.left, s.W);
              const int64_t o = ((n * OH + oy) * OW + ox) * C + c;
              if (iy < 0 || ix < 0) {
                want[o] = 0.5f;
                continue;
              }
              const int64_t i = ((n * s.H + iy) * s.W + ix) * C + c;
              want[o] = x[i];
              dwant[i] += dy[o];
            }
      for (cnnx::Isa isa : supported_isas()) {
        IsaScope scope(isa);
        std::vector<float> y(dy.size(), 9.0f), dx(x.size(), 9.0f);
        cnnx::pad2d_forward(p.m, s, 0.5f, x.data(), y.data());
        EXPECT_TRUE(all_close(y.data(), want.data(), y.size(), 0, 0));
        cnnx::pad2d_backward(p.m, s, dy.data(), dx.data());
        EXPECT_TRUE(all_close(dx.data(), dwant.data(), dx.size(), 1e-5f, 1e-6f));
      }
    }
  }
}

// Outputs beyond the caches take the streaming stores (see stream_stores).
TEST(Layout, LargeOutputsStreamTheSameValues) {
  const int64_t N = 1, H = 260, W = 256, C = 65;  // 17+ MB out
  const auto x = random_vector(N * H * W * C, 12);
  cnnx::Pad2dShape s;
  s.N = N;
  s.H = H;
  s.W = W;
  s.C = C;
  s.top = 1;
  s.bottom = 2;
  s.left = 3;
  s.right = 1;
  const int64_t OH = s.out_h(), OW = s.out_w();
  std::vector<float> want(N * OH * OW * C);
  for (int64_t oy = 0; oy < OH; ++oy)
    for (int64_t ox = 0; ox < OW; ++ox)
      for (int64_t c = 0; c < C; ++c) {
        const int64_t iy = src_index(cnnx::PadMode::reflect, oy - 1, H),
                      ix = src_index(cnnx::PadMode::reflect, ox - 3, W);
        want[(oy * OW + ox) * C + c] = x[(iy * W + ix) * C + c];
      }
  std::vector<float> up_want(N * H * 2 * W * 2 * C);
  for (int64_t oy = 0; oy < 2 * H; ++oy)
    for (int64_t ox = 0; ox < 2 * W; ++ox)
      for (int64_t c = 0; c < C; ++c)
        up_want[(oy * 2 * W + ox) * C + c] = x[((oy / 2) * W + ox / 2) * C + c];
  for (cnnx::Isa isa : supported_isas()) {
    IsaScope scope(isa);
    std::vector<float> y(want.size());
    cnnx::pad2d_forward(cnnx::PadMode::reflect, s, 0.0f, x.data(), y.data());
    EXPECT_TRUE(all_close(y.data(), want.data(), y.size(), 0, 0));
    std::vector<float> u(up_want.size());
    cnnx::upsample2d_forward(cnnx::UpsampleMode::nearest, N, H, W, C, 2, 2, x.data(), u.data());
    EXPECT_TRUE(all_close(u.data(), up_want.data(), u.size(), 0, 0));
    const int64_t shape[3] = {H, W, C};
    const int perm[3] = {1, 0, 2};
    std::vector<float> t(x.size());
    cnnx::transpose_nd(N, 3, shape, perm, x.data(), t.data());
    for (int64_t i = 0; i < W; i += 7)
      for (int64_t j = 0; j < H; j += 5)
        for (int64_t c = 0; c < C; ++c) ASSERT_EQ(t[(i * H + j) * C + c], x[(j * W + i) * C + c]);
  }
}

TEST(Pad2d, RejectsReflectionWiderThanTheInput) {
  cnnx::Pad2dShape s;
  s.N = 1;
  s.H = 3;
  s.W = 3;
  s.C = 2;
  s.left = 3;
  EXPECT_STRNE(cnnx::pad2d_check(cnnx::PadMode::reflect, s), "");
  EXPECT_STREQ(cnnx::pad2d_check(cnnx::PadMode::edge, s), "");
  s.left = -1;
  EXPECT_STRNE(cnnx::pad2d_check(cnnx::PadMode::edge, s), "");
  s.left = -3;
  EXPECT_STRNE(cnnx::pad2d_check(cnnx::PadMode::constant, s), "");  // nothing left
}

// ---- upsampling ---------------------------------------------------------------------------
TEST(Upsample2d, NearestAndBilinearMatchNaive) {
  const int64_t N = 2, H = 3, W = 4;
  for (int64_t C : {1, 5, 16}) {
    for (auto fhw : {std::pair<int64_t, int64_t>{2, 2}, {3, 1}, {1, 4}, {3, 2}}) {
      const int64_t fh = fhw.first, fw = fhw.second, OH = H * fh, OW = W * fw;
      const auto x = random_vector(N * H * W * C, 7);
      const auto dy = random_vector(N * OH * OW * C, 8);
      for (cnnx::UpsampleMode m : {cnnx::UpsampleMode::nearest, cnnx::UpsampleMode::bilinear}) {
        std::vector<double> want(dy.size(), 0.0), dwant(x.size(), 0.0);
        auto taps = [](int64_t d, int64_t f, int64_t n, int64_t* i0, int64_t* i1, double* l) {
          double src = (d + 0.5) / static_cast<double>(f) - 0.5;
          if (src < 0) src = 0;
          *i0 = static_cast<int64_t>(src);
          *i1 = std::min(*i0 + 1, n - 1);
          *l = src - *i0;
        };
        for (int64_t n = 0; n < N; ++n)
          for (int64_t oy = 0; oy < OH; ++oy)
            for (int64_t ox = 0; ox < OW; ++ox)
              for (int64_t c = 0; c < C; ++c) {
                const int64_t o = ((n * OH + oy) * OW + ox) * C + c;
                auto at = [&](int64_t iy, int64_t ix) { return ((n * H + iy) * W + ix) * C + c; };
                if (m == cnnx::UpsampleMode::nearest) {
                  want[o] = x[at(oy / fh, ox / fw)];
                  dwant[at(oy / fh, ox / fw)] += dy[o];
                  continue;
                }
                int64_t y0, y1, x0, x1;
                double ly, lx;
                taps(oy, fh, H, &y0, &y1, &ly);
                taps(ox, fw, W, &x0, &x1, &lx);
                const double wts[4] = {(1 - ly) * (1 - lx), (1 - ly) * lx, ly * (1 - lx), ly * lx};
                const int64_t idx[4] = {at(y0, x0), at(y0, x1), at(y1, x0), at(y1, x1)};
                for (int q = 0; q < 4; ++q) {
                  want[o] += wts[q] * x[idx[q]];
                  dwant[idx[q]] += wts[q] * dy[o];
                }
              }
        std::vector<float> wf(want.begin(), want.end()), dwf(dwant.begin(), dwant.end());
        for (cnnx::Isa isa : supported_isas()) {
          IsaScope scope(isa);
          std::vector<float> y(dy.size(), 9.0f), dx(x.size(), 9.0f);
          cnnx::upsample2d_forward(m, N, H, W, C, fh, fw, x.data(), y.data());
          EXPECT_TRUE(all_close(y.data(), wf.data(), y.size(), 1e-5f, 1e-5f));
          cnnx::upsample2d_backward(m, N, H, W, C, fh, fw, dy.data(), dx.data());
          EXPECT_TRUE(all_close(dx.data(), dwf.data(), dx.size(), 1e-4f, 1e-5f));
        }
      }
    }
  }
}

// ---- depth <-> space, shuffle, permutation ------------------------------------------------
TEST(DepthToSpace, MatchesOnnxDefinitionAndInverts) {
  const int64_t N = 2, H = 3, W = 2, b = 2;
  for (int64_t Co : {1, 3, 8, 16, 37}) {  // 16 and 37: the AVX-512 PixelShuffle(2) body
    const int64_t C = Co * b * b;
    const auto x = random_vector(N * H * W * C, 9);
    for (cnnx::DepthOrder order : {cnnx::DepthOrder::dcr, cnnx::DepthOrder::crd}) {
      std::vector<float> want(x.size());
      for (int64_t n = 0; n < N; ++n)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t w = 0; w < W; ++w)
            for (int64_t i = 0; i < b; ++i)
              for (int64_t j = 0; j < b; ++j)
                for (int64_t c = 0; c < Co; ++c) {
                  const int64_t ch =
                      order == cnnx::DepthOrder::dcr ? (i * b + j) * Co + c : c * b * b + i * b + j;
                  want[((n * H * b + h * b + i) * W * b + w * b + j) * Co + c] =
                      x[((n * H + h) * W + w) * C + ch];
                }
      for (cnnx::Isa isa : supported_isas()) {
        IsaScope scope(isa);
        std::vector<float> y(x.size()), back(x.size());
        cnnx::depth_to_space(order, N, H, W, C, b, x.data(), y.data());
        EXPECT_TRUE(all_close(y.data(), want.data(), y.size(), 0, 0));
        cnnx::space_to_depth(order, N, H * b, W * b, Co, b, y.data(), back.data());
        EXPECT_TRUE(all_close(back.data(), x.data(), x.size(), 0, 0));
      }
    }
  }
  std::vector<float> x(12), y(12);
  EXPECT_THROW(cnnx::depth_to_space(cnnx::DepthOrder::dcr, 1, 1, 1, 12, 3, x.data(), y.data()),
               std::invalid_argument);
  EXPECT_THROW(cnnx::space_to_depth(cnnx::DepthOrder::dcr, 1, 3, 4, 1, 2, x.data(), y.data()),
               std::invalid_argument);
}

TEST(ChannelShuffle, MatchesNaiveAndInverts) {
  for (int64_t g : {1, 2, 3, 4, 8}) {
    for (int64_t cpg : {1, 5, 16, 29}) {
      const int64_t C = g * cpg, P = 7;
      const auto x = random_vector(P * C, 10);
      std::vector<float> want(x.size());
      for (int64_t p = 0; p < P; ++p)
        for (int64_t i = 0; i < g; ++i)
          for (int64_t j = 0; j < cpg; ++j) want[p * C + j * g + i] = x[p * C + i * cpg + j];
      for (cnnx::Isa isa : supported_isas()) {
        IsaScope scope(isa);
        std::vector<float> y(x.size()), back(x.size());
        cnnx::channel_shuffle(P, C, g, x.data(), y.data());
        EXPECT_TRUE(all_close(y.data(), want.data(), y.size(), 0, 0)) << g << " " << cpg;
        cnnx::channel_shuffle(P, C, cpg, y.data(), back.data());
        EXPECT_TRUE(all_close(back.data(), x.data(), x.size(), 0, 0));
      }
    }
  }
}

TEST(TransposeNd, MatchesNaive) {
  const int64_t shape[4] = {3, 4, 5, 6};
  const int perms[][4] = {{0, 1, 2, 3}, {1, 0, 2, 3}, {3, 2, 1, 0},
                          {0, 3, 1, 2}, {2, 0, 3, 1}, {0, 2, 1, 3}};
  const int64_t N = 2, total = 3 * 4 * 5 * 6;
  const auto x = random_vector(N * total, 11);
  for (const auto& perm : perms) {
    std::vector<float> want(x.size());
    int64_t od[4];
    for (int a = 0; a < 4; ++a) od[a] = shape[perm[a]];
    for (int64_t n = 0; n < N; ++n)
      for (int64_t a = 0; a < od[0]; ++a)
        for (int64_t b = 0; b < od[1]; ++b)
          for (int64_t c = 0; c < od[2]; ++c)
            for (int64_t d = 0; d < od[3]; ++d) {
              int64_t idx[4];
              const int64_t o[4] = {a, b, c, d};
              for (int k = 0; k < 4; ++k) idx[perm[k]] = o[k];
              const int64_t src = ((idx[0] * 4 + idx[1]) * 5 + idx[2]) * 6 + idx[3];
              want[n * total + ((a * od[1] + b) * od[2] + c) * od[3] + d] = x[n * total + src];
            }
    for (cnnx::Isa isa : supported_isas()) {
      IsaScope scope(isa);
      std::vector<float> y(x.size());
      cnnx::transpose_nd(N, 4, shape, perm, x.data(), y.data());
      EXPECT_TRUE(all_close(y.data(), want.data(), y.size(), 0, 0));
    }
  }
  const int bad[4] = {0, 0, 1, 2};
  std::vector<float> y(x.size());
  EXPECT_THROW(cnnx::transpose_nd(N, 4, shape, bad, x.data(), y.data()), std::invalid_argument);
}

}  // namespace
