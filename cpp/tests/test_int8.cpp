// int8 kernels against naive references: the GEMM (every micro-kernel that
// runs here, every ISA level), the convolution (groups, depthwise, strides,
// dilation, padding with the zero point), pooling, add, quantize and
// dequantize. The store is specified to the bit (int8.h), so results must be
// identical, not close; the references below restate that specification
// with plain loops and int64 sums.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "cnnx/cpu.h"
#include "cnnx/int8.h"
#include "int8/qgemm_ukernel.h"
#include "test_util.h"

using namespace cnnx_test;
using cnnx::QActivation;
using cnnx::QEpilogue;
using cnnx::QOutput;

namespace {

// Every int8 micro-kernel this CPU runs (named override), then "" (the
// default for each ISA level, set by the caller).
std::vector<std::string> runnable_kernels() {
  std::vector<const cnnx::QGemmConfig*> all = {&cnnx::kQGemmGeneric, &cnnx::kQGemmAvx2,
                                               &cnnx::kQGemmAvxVnni, &cnnx::kQGemmAvxVnniEvex};
  for (int i = 0; i < cnnx::kQGemmAvx512VnniVariantCount; ++i)
    all.push_back(&cnnx::kQGemmAvx512VnniVariants[i]);
  std::vector<std::string> out;
  for (const auto* g : all)
    if (cnnx::qgemm_config_runs_here(*g)) out.push_back(g->name);
  return out;
}

class KernelScope {
 public:
  explicit KernelScope(const std::string& name) {
    EXPECT_TRUE(cnnx::set_qgemm_kernel(name.c_str())) << name;
  }
  ~KernelScope() { cnnx::set_qgemm_kernel(nullptr); }
};

std::vector<uint8_t> random_u8(size_t n, std::mt19937& rng) {
  std::uniform_int_distribution<int> d(0, 255);
  std::vector<uint8_t> v(n);
  for (auto& x : v) x = static_cast<uint8_t>(d(rng));
  return v;
}
std::vector<int8_t> random_s8(size_t n, std::mt19937& rng) {
  std::uniform_int_distribution<int> d(-128, 127);
  std::vector<int8_t> v(n);
  for (auto& x : v) x = static_cast<int8_t>(d(rng));
  return v;
}

// The store of int8.h, restated.
struct RefStore {
  QEpilogue ep;
  const float* w_scale;
  float lo, hi;
  RefStore(const QEpilogue& e, const float* ws) : ep(e), w_scale(ws) {
    const float inf = std::numeric_limits<float>::infinity();
    if (e.out == QOutput::u8) {
      const int zy = e.y.zero_point;
      int lo_q = e.act == QActivation::none ? 0 : zy, hi_q = 255;
      if (e.act == QActivation::relu6) {
        const float six = 6.0f / e.y.scale;
        hi_q = std::min(255, zy + (six >= 255.0f ? 255 : static_cast<int>(std::nearbyint(six))));
      }
      lo = static_cast<float>(lo_q - zy);
      hi = static_cast<float>(hi_q - zy);
    } else {
      lo = e.act == QActivation::none ? -inf : 0.0f;
      hi = e.act == QActivation::relu6 ? 6.0f : inf;
    }
  }
  // acc is sum (x - za) * w, exact.
  void write(int64_t acc, int64_t c, void* out, int64_t idx) const {
    EXPECT_LT(std::llabs(acc), int64_t{1} << 31);
    const int32_t a = static_cast<int32_t>(acc);
    if (ep.out == QOutput::s32) {
      static_cast<int32_t*>(out)[idx] = a;
      return;
    }
    float mult = ep.x.scale * w_scale[c];
    float offs = ep.bias ? ep.bias[c] : 0.0f;
    if (ep.out == QOutput::u8) {
      mult = mult / ep.y.scale;
      offs = offs / ep.y.scale;
    }
    float v = std::fma(static_cast<float>(a), mult, offs);
    v = v > lo ? v : lo;
    v = v < hi ? v : hi;
    if (ep.out == QOutput::f32)
      static_cast<float*>(out)[idx] = v;
    else
      static_cast<uint8_t*>(out)[idx] =
          static_cast<uint8_t>(static_cast<int>(std::nearbyint(v)) + ep.y.zero_point);
  }
};

size_t out_bytes(QOutput o) { return o == QOutput::u8 ? 1 : 4; }

::testing::AssertionResult same_bytes(const std::vector<uint8_t>& got,
                                      const std::vector<uint8_t>& want, size_t elem) {
  for (size_t i = 0; i < got.size(); i += elem)
    if (std::memcmp(got.data() + i, want.data() + i, elem)) {
      float g = 0, w = 0;
      int32_t gi = 0, wi = 0;
      if (elem == 4) {
        std::memcpy(&g, got.data() + i, 4);
        std::memcpy(&w, want.data() + i, 4);
        std::memcpy(&gi, got.data() + i, 4);
        std::memcpy(&wi, want.data() + i, 4);
      }
      return ::testing::AssertionFailure()
             << "element " << i / elem << ": got byte " << int(got[i]) << " / f32 " << g
             << " / s32 " << gi << ", expected byte " << int(want[i]) << " / f32 " << w << " / s32 "
             << wi;
    }
  return ::testing::AssertionSuccess();
}

struct GemmCase {
  int64_t M, N, K;
  int32_t za;
  QOutput out;
  QActivation act;
  bool bias;
  int64_t pad;  // extra columns in lda and ldc
  int threads;
};

void run_gemm_case(const GemmCase& gc, uint32_t seed, const std::string& what) {
  std::mt19937 rng(seed);
  const int64_t lda = gc.K + gc.pad, ldc = gc.N + gc.pad;
  auto a = random_u8(gc.M * lda, rng);
  auto w = random_s8(gc.K * gc.N, rng);
  auto ws = random_vector(gc.N, seed + 1, 0.001f, 0.02f);
  auto bias = random_vector(gc.N, seed + 2, -3.0f, 3.0f);
  QEpilogue ep;
  ep.x = {0.05f, gc.za};
  ep.bias = gc.bias ? bias.data() : nullptr;
  ep.act = gc.act;
  ep.out = gc.out;
  ep.y = {0.37f, static_cast<int32_t>(seed % 256)};
  const size_t ob = out_bytes(gc.out);
  std::vector<uint8_t> got(gc.M * ldc * ob, 0xAB), want(gc.M * ldc * ob, 0xAB);
  const cnnx::QPackedWeights p = cnnx::qgemm_pack_weights(gc.K, gc.N, w.data(), gc.N, ws.data());
  cnnx::qgemm(gc.M, a.data(), lda, p, ep, got.data(), ldc, gc.threads);
  const RefStore ref(ep, ws.data());
  for (int64_t i = 0; i < gc.M; ++i)
    for (int64_t j = 0; j < gc.N; ++j) {
      int64_t acc = 0;
      for (int64_t k = 0; k < gc.K; ++k)
        acc += (int64_t{a[i * lda + k]} - gc.za) * int64_t{w[k * gc.N + j]};
      ref.write(acc, j, want.data(), i * ldc + j);
    }
  ASSERT_TRUE(same_bytes(got, want, ob))
      << what << " M=" << gc.M << " N=" << gc.N << " K=" << gc.K << " za=" << gc.za
      << " out=" << int(gc.out) << " act=" << int(gc.act) << " bias=" << gc.bias
      << " pad=" << gc.pad << " threads=" << gc.threads;
}

void sampled_gemm_cases(const std::string& what, uint32_t seed0, int count) {
  std::mt19937 rng(seed0);
  std::uniform_int_distribution<int> size(1, 67);
  const int32_t zps[] = {0, 128, 255, 37};
  const QOutput outs[] = {QOutput::f32, QOutput::u8, QOutput::s32};
  const QActivation acts[] = {QActivation::none, QActivation::relu, QActivation::relu6};
  for (int t = 0; t < count; ++t) {
    GemmCase gc{size(rng),         size(rng),  size(rng),          zps[t % 4],        outs[t % 3],
                acts[(t / 3) % 3], t % 2 == 0, t % 5 == 0 ? 5 : 0, t % 4 == 3 ? 2 : 1};
    run_gemm_case(gc, seed0 + t, what);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

}  // namespace

TEST(QGemm, SampledSizesEveryKernel) {
  for (const std::string& k : runnable_kernels()) {
    KernelScope scope(k);
    sampled_gemm_cases(k, 100, 90);
    if (HasFatalFailure()) return;
  }
}

TEST(QGemm, DefaultKernelOfEveryIsa) {
  for (cnnx::Isa isa : supported_isas()) {
    IsaScope scope(isa);
    sampled_gemm_cases(std::string("isa ") + cnnx::isa_name(isa), 700, 40);
    if (HasFatalFailure()) return;
  }
}

TEST(QGemm, LargerShapesAndThreads) {
  // Several A blocks per thread, several panels, ragged edges everywhere.
  for (const std::string& k : runnable_kernels()) {
    KernelScope scope(k);
    run_gemm_case({301, 77, 1031, 128, QOutput::u8, QActivation::relu, true, 3, 2}, 7, k);
    run_gemm_case({1201, 45, 300, 3, QOutput::f32, QActivation::none, true, 0, 2}, 8, k);
    run_gemm_case({5, 333, 129, 200, QOutput::s32, QActivation::none, false, 0, 2}, 9, k);
    if (HasFatalFailure()) return;
  }
}

TEST(QGemm, DispatchFollowsIsaAndCpuFlags) {
  {
    IsaScope scope(cnnx::Isa::generic);
    EXPECT_STREQ(cnnx::qgemm_kernel_name(), cnnx::kQGemmGeneric.name);
  }
  if (cnnx::detected_isa() >= cnnx::Isa::avx2) {
    IsaScope scope(cnnx::Isa::avx2);
    EXPECT_STREQ(cnnx::qgemm_kernel_name(),
                 cnnx::cpu_has_avx_vnni() ? cnnx::kQGemmAvxVnni.name : cnnx::kQGemmAvx2.name);
  }
  if (cnnx::detected_isa() == cnnx::Isa::avx512) {
    IsaScope scope(cnnx::Isa::avx512);
    const char* want = cnnx::cpu_has_avx512_vnni() ? cnnx::kQGemmAvx512Vnni.name
                       : cnnx::cpu_has_avx_vnni()  ? cnnx::kQGemmAvxVnni.name
                                                   : cnnx::kQGemmAvx2.name;
    EXPECT_STREQ(cnnx::qgemm_kernel_name(), want);
  }
  EXPECT_FALSE(cnnx::set_qgemm_kernel("no_such_kernel"));
  if (!cnnx::cpu_has_avx_vnni()) EXPECT_FALSE(cnnx::set_qgemm_kernel(cnnx::kQGemmAvxVnni.name));
}

TEST(QGemm, AccumulatorExtremes) {
  // K = 65536 with x = 255 and w = -128 (or 127), zero point 0: |acc| just
  // below 2^31; and zero point 255 with x = 0: the compensation alone.
  const int64_t K = cnnx::kQGemmMaxK, M = 3, N = 3;
  std::vector<uint8_t> a(M * K);
  std::vector<int8_t> w(K * N);
  for (int64_t k = 0; k < K; ++k) {
    a[k] = 255;    // row 0: all 255
    a[K + k] = 0;  // row 1: all 0
    a[2 * K + k] = k % 2 ? 255 : 0;
    w[k * N + 0] = -128;
    w[k * N + 1] = 127;
    w[k * N + 2] = k % 3 ? -128 : 127;
  }
  const std::vector<float> ws(N, 1.0f);
  for (const std::string& kname : runnable_kernels()) {
    KernelScope scope(kname);
    const auto p = cnnx::qgemm_pack_weights(K, N, w.data(), N, ws.data());
    for (int32_t za : {0, 255, 128}) {
      QEpilogue ep;
      ep.x = {1.0f, za};
      ep.out = QOutput::s32;
      std::vector<int32_t> c(M * N);
      cnnx::qgemm(M, a.data(), K, p, ep, c.data(), N, 1);
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
          int64_t acc = 0;
          for (int64_t k = 0; k < K; ++k) acc += (int64_t{a[i * K + k]} - za) * w[k * N + j];
          ASSERT_LT(std::llabs(acc), int64_t{1} << 31);
          ASSERT_EQ(c[i * N + j], acc) << kname << " za=" << za << " i=" << i << " j=" << j;
        }
      // Through the u8 store: huge accumulators clamp to 0 or 255.
      ep.out = QOutput::u8;
      ep.y = {1.0f, 128};
      std::vector<uint8_t> q(M * N);
      cnnx::qgemm(M, a.data(), K, p, ep, q.data(), N, 1);
      for (int64_t i = 0; i < M * N; ++i) {
        const int32_t s = c[i];
        const int want = s > 127 ? 255 : s < -128 ? 0 : s + 128;
        ASSERT_EQ(q[i], want) << kname << " za=" << za << " element " << i;
      }
    }
  }
  std::vector<int8_t> w2((K + 1) * N);
  const std::vector<float> ws2(N, 1.0f);
  EXPECT_THROW(cnnx::qgemm_pack_weights(K + 1, N, w2.data(), N, ws2.data()), std::invalid_argument);
}

TEST(QGemm, RoundsHalfToEven) {
  // acc = 1..8 with mult 0.5 gives exact halves: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2 ...
  const int64_t K = 1, N = 1, M = 8;
  std::vector<uint8_t> a(M);
  for (int i = 0; i < M; ++i) a[i] = static_cast<uint8_t>(i + 1);
  const int8_t w = 1;
  const float ws = 0.5f;
  for (cnnx::Isa isa : supported_isas()) {
    IsaScope scope(isa);
    const auto p = cnnx::qgemm_pack_weights(K, N, &w, 1, &ws);
    QEpilogue ep;
    ep.x = {1.0f, 0};
    ep.out = QOutput::u8;
    ep.y = {1.0f, 0};
    std::vector<uint8_t> q(M);
    cnnx::qgemm(M, a.data(), K, p, ep, q.data(), N, 1);
    const uint8_t want[] = {0, 1, 2, 2, 2, 3, 4, 4};
    for (int i = 0; i < M; ++i) EXPECT_EQ(q[i], want[i]) << cnnx::isa_name(isa) << " acc " << i + 1;
  }
}

TEST(QGemm, RefusesBadArguments) {
  const int8_t w[4] = {1, 2, 3, 4};
  const float ws[2] = {1.0f, 1.0f}, bad[2] = {1.0f, std::nanf("")}, zero[2] = {0.0f, 1.0f};
  EXPECT_THROW(cnnx::qgemm_pack_weights(2, 2, w, 2, bad), std::invalid_argument);
  EXPECT_THROW(cnnx::qgemm_pack_weights(2, 2, w, 2, zero), std::invalid_argument);
  EXPECT_THROW(cnnx::qgemm_pack_weights(0, 2, w, 2, ws), std::invalid_argument);
  const auto p = cnnx::qgemm_pack_weights(2, 2, w, 2, ws);
  const uint8_t a[2] = {1, 2};
  float c[2];
  QEpilogue ep;
  ep.x = {std::numeric_limits<float>::infinity(), 0};
  EXPECT_THROW(cnnx::qgemm(1, a, 2, p, ep, c, 2), std::invalid_argument);
  ep.x = {1.0f, 256};
  EXPECT_THROW(cnnx::qgemm(1, a, 2, p, ep, c, 2), std::invalid_argument);
  ep.x = {1.0f, 0};
  const float nan_bias[2] = {0.0f, std::nanf("")};
  ep.bias = nan_bias;
  EXPECT_THROW(cnnx::qgemm(1, a, 2, p, ep, c, 2), std::invalid_argument);
  ep.bias = nullptr;
  ep.out = QOutput::u8;
  ep.y = {-1.0f, 0};
  EXPECT_THROW(cnnx::qgemm(1, a, 2, p, ep, c, 2), std::invalid_argument);
  // Packed under one kernel, run under another.
  if (cnnx::detected_isa() >= cnnx::Isa::avx2) {
    cnnx::QPackedWeights generic_pack;
    {
      IsaScope scope(cnnx::Isa::generic);
      generic_pack = cnnx::qgemm_pack_weights(2, 2, w, 2, ws);
    }
    QEpilogue ok;
    EXPECT_THROW(cnnx::qgemm(1, a, 2, generic_pack, ok, c, 2), std::invalid_argument);
  }
}

// ---------------------------------------------------------------- convolution

namespace {

struct ConvCase {
  int64_t N, H, W, C_in, KH, KW, C_out, sh, sw, dh, dw, pt, pb, pl, pr, groups;
};

cnnx::Conv2dShape shape_of(const ConvCase& c) {
  cnnx::Conv2dShape s;
  s.N = c.N;
  s.H = c.H;
  s.W = c.W;
  s.C_in = c.C_in;
  s.KH = c.KH;
  s.KW = c.KW;
  s.C_out = c.C_out;
  s.stride_h = c.sh;
  s.stride_w = c.sw;
  s.dilation_h = c.dh;
  s.dilation_w = c.dw;
  s.pad_top = c.pt;
  s.pad_bottom = c.pb;
  s.pad_left = c.pl;
  s.pad_right = c.pr;
  s.groups = c.groups;
  return s;
}

void run_conv_case(const ConvCase& cc, int32_t za, QOutput out, QActivation act, uint32_t seed,
                   const std::string& what) {
  const cnnx::Conv2dShape s = shape_of(cc);
  std::mt19937 rng(seed);
  auto x = random_u8(s.input_size(), rng);
  auto w = random_s8(s.weight_size(), rng);
  auto ws = random_vector(s.C_out, seed + 1, 0.001f, 0.02f);
  auto bias = random_vector(s.C_out, seed + 2, -2.0f, 2.0f);
  QEpilogue ep;
  ep.x = {0.04f, za};
  ep.bias = seed % 2 ? bias.data() : nullptr;
  ep.act = act;
  ep.out = out;
  ep.y = {0.2f, static_cast<int32_t>(seed % 200)};
  const size_t ob = out_bytes(out);
  std::vector<uint8_t> got(s.output_size() * ob), want(s.output_size() * ob);
  const auto p = cnnx::qconv2d_pack_weights(s, w.data(), ws.data());
  cnnx::qconv2d_forward(s, x.data(), p, ep, got.data(), seed % 3 == 0 ? 2 : 0);
  const RefStore ref(ep, ws.data());
  const int64_t OH = s.out_h(), OW = s.out_w(), cig = s.cin_per_group(), cog = s.cout_per_group();
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow)
        for (int64_t co = 0; co < s.C_out; ++co) {
          const int64_t g = co / cog;
          int64_t acc = 0;
          for (int64_t kh = 0; kh < s.KH; ++kh)
            for (int64_t kw = 0; kw < s.KW; ++kw)
              for (int64_t ci = 0; ci < cig; ++ci) {
                const int64_t ih = oh * s.stride_h - s.pad_top + kh * s.dilation_h;
                const int64_t iw = ow * s.stride_w - s.pad_left + kw * s.dilation_w;
                const int64_t xv = (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W)
                                       ? za  // padding is the zero point: real 0
                                       : x[((n * s.H + ih) * s.W + iw) * s.C_in + g * cig + ci];
                acc += (xv - za) * w[((kh * s.KW + kw) * cig + ci) * s.C_out + co];
              }
          ref.write(acc, co, want.data(), ((n * OH + oh) * OW + ow) * s.C_out + co);
        }
  ASSERT_TRUE(same_bytes(got, want, ob))
      << what << " " << cnnx::qconv2d_algorithm(s) << " N=" << s.N << " H=" << s.H << " W=" << s.W
      << " C_in=" << s.C_in << " K=" << s.KH << "x" << s.KW << " C_out=" << s.C_out
      << " stride=" << s.stride_h << "," << s.stride_w << " dil=" << s.dilation_h << ","
      << s.dilation_w << " pads=" << s.pad_top << "," << s.pad_bottom << "," << s.pad_left << ","
      << s.pad_right << " groups=" << s.groups << " za=" << za << " out=" << int(out)
      << " act=" << int(act);
}

const ConvCase kConvCases[] = {
    // N  H   W  Cin KH KW Cout sh sw dh dw pt pb pl pr groups
    {2, 7, 9, 5, 3, 3, 7, 1, 1, 1, 1, 1, 1, 1, 1, 1},      // odd everything, same pad
    {1, 8, 8, 16, 1, 1, 33, 1, 1, 1, 1, 0, 0, 0, 0, 1},    // 1x1 in place
    {3, 5, 6, 7, 1, 1, 9, 1, 1, 1, 1, 0, 0, 0, 0, 1},      // 1x1, K % 4 != 0 (staged)
    {1, 9, 7, 12, 1, 1, 20, 2, 2, 1, 1, 0, 0, 0, 0, 1},    // 1x1 stride 2
    {2, 11, 10, 12, 3, 2, 9, 2, 1, 1, 2, 2, 0, 1, 1, 3},   // groups, dilation, asym pad
    {1, 12, 13, 3, 7, 7, 8, 2, 2, 1, 1, 3, 3, 3, 3, 1},    // stem-like
    {1, 9, 9, 8, 3, 3, 8, 1, 1, 1, 1, 1, 1, 1, 1, 8},      // depthwise
    {2, 10, 7, 19, 5, 3, 19, 2, 2, 1, 1, 2, 2, 1, 1, 19},  // depthwise, odd C, stride
    {1, 6, 6, 37, 3, 3, 37, 1, 1, 2, 2, 2, 2, 2, 2, 37},   // depthwise, dilation, C % 16
    {1, 6, 6, 4, 3, 3, 12, 1, 1, 1, 1, 1, 1, 1, 1, 4},     // depthwise multiplier 3
    {1, 6, 6, 4, 3, 3, 8, 1, 1, 1, 1, 0, 0, 0, 0, 2},      // groups of 2 channels
    {1, 4, 4, 64, 3, 3, 70, 1, 1, 1, 1, 1, 1, 1, 1, 1},    // several panels
    {0, 4, 4, 3, 3, 3, 5, 1, 1, 1, 1, 1, 1, 1, 1, 1},      // empty batch
    {1, 3, 3, 2, 3, 3, 3, 1, 1, 1, 1, 2, 2, 2, 2, 1},      // mostly padding
    {2, 9, 8, 16, 3, 3, 24, 2, 2, 1, 1, 1, 1, 1, 1, 1},    // filter rows read in place
    {1, 7, 6, 8, 3, 3, 12, 1, 1, 2, 2, 2, 2, 2, 2, 1},     // taps read in place (dilated)
    {1, 3, 3, 4, 5, 5, 8, 1, 1, 1, 1, 4, 4, 4, 4, 1},      // in place, mostly padding
    {3, 5, 5, 8, 3, 3, 10, 1, 1, 1, 1, 1, 1, 1, 1, 2},     // groups, taps in place
    {1, 6, 6, 3, 3, 3, 4, 1, 1, 1, 1, 0, 0, 0, 0, 1},      // rows padded to 4 bytes, the
                                                           // last one would read past x
};

}  // namespace

TEST(QConv2d, MatchesReferenceEveryIsa) {
  const int32_t zps[] = {0, 128, 255, 77};
  const QOutput outs[] = {QOutput::u8, QOutput::f32, QOutput::s32};
  const QActivation acts[] = {QActivation::relu, QActivation::none, QActivation::relu6};
  for (cnnx::Isa isa : supported_isas()) {
    IsaScope scope(isa);
    uint32_t seed = 11;
    for (const ConvCase& c : kConvCases) {
      for (int v = 0; v < 3; ++v, ++seed) {
        run_conv_case(c, zps[(seed + v) % 4], outs[v], acts[(seed / 3) % 3], seed,
                      cnnx::isa_name(isa));
        if (HasFatalFailure()) return;
      }
    }
  }
}

TEST(QConv2d, EveryKernel) {
  for (const std::string& k : runnable_kernels()) {
    KernelScope scope(k);
    uint32_t seed = 500;
    for (const ConvCase& c : kConvCases) {
      run_conv_case(c, 128, QOutput::u8, QActivation::relu, seed++, k);
      if (HasFatalFailure()) return;
    }
  }
}

TEST(QConv2d, RefusesMismatchedPack) {
  ConvCase c{1, 5, 5, 4, 3, 3, 6, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  cnnx::Conv2dShape s = shape_of(c);
  std::vector<int8_t> w(s.weight_size(), 1);
  std::vector<float> ws(s.C_out, 1.0f);
  std::vector<uint8_t> x(s.input_size(), 3);
  std::vector<float> y(s.output_size());
  const auto p = cnnx::qconv2d_pack_weights(s, w.data(), ws.data());
  QEpilogue ep;
  cnnx::Conv2dShape other = s;
  other.KH = 1;
  EXPECT_THROW(cnnx::qconv2d_forward(other, x.data(), p, ep, y.data()), std::invalid_argument);
  const auto g = cnnx::qgemm_pack_weights(4, 6, w.data(), 6, ws.data());
  EXPECT_THROW(cnnx::qconv2d_forward(s, x.data(), g, ep, y.data()), std::invalid_argument);
  EXPECT_THROW(cnnx::qgemm(1, x.data(), 36, p, ep, y.data(), 6), std::invalid_argument);
  other = s;
  other.stride_h = 0;
  EXPECT_THROW(cnnx::qconv2d_forward(other, x.data(), p, ep, y.data()), std::invalid_argument);
}

// ------------------------------------------------------ pooling, add, quantize

TEST(QPool, MaxAndAverageMatchReference) {
  struct P {
    int64_t n, h, w, c, kh, kw, sh, sw, pt, pb, pl, pr;
  };
  const P cases[] = {{2, 7, 9, 5, 2, 2, 2, 2, 0, 0, 0, 0},
                     {1, 8, 8, 67, 3, 3, 2, 2, 1, 1, 1, 1},
                     {1, 5, 6, 130, 3, 2, 1, 1, 1, 1, 1, 0},
                     {3, 7, 7, 33, 7, 7, 1, 1, 0, 0, 0, 0},
                     {1, 4, 5, 1, 2, 3, 1, 2, 1, 0, 0, 1}};
  std::mt19937 rng(3);
  for (cnnx::Isa isa : supported_isas()) {
    IsaScope scope(isa);
    for (const P& c : cases) {
      const cnnx::PoolShape s{c.n, c.h, c.w, c.c};
      const cnnx::Pool2dParams p{c.kh, c.kw, c.sh, c.sw, c.pt, c.pb, c.pl, c.pr};
      int64_t oh, ow;
      cnnx::pool2d_check(s, p, &oh, &ow);
      auto x = random_u8(c.n * c.h * c.w * c.c, rng);
      std::vector<uint8_t> ymax(c.n * oh * ow * c.c), yavg(ymax.size()), yavg2(ymax.size());
      cnnx::qmax_pool2d_forward(s, p, x.data(), ymax.data());
      const cnnx::QuantParams xq{0.1f, 100}, yq{0.07f, 30};
      cnnx::qavg_pool2d_forward(s, p, true, xq, yq, x.data(), yavg.data());
      cnnx::qavg_pool2d_forward(s, p, false, xq, xq, x.data(), yavg2.data());
      for (int64_t n = 0; n < c.n; ++n)
        for (int64_t i = 0; i < oh; ++i)
          for (int64_t j = 0; j < ow; ++j)
            for (int64_t ch = 0; ch < c.c; ++ch) {
              int m = 0;
              int64_t sum = 0, cnt = 0;
              for (int64_t a = 0; a < c.kh; ++a)
                for (int64_t b = 0; b < c.kw; ++b) {
                  const int64_t h = i * c.sh - c.pt + a, w = j * c.sw - c.pl + b;
                  if (h < 0 || h >= c.h || w < 0 || w >= c.w) continue;
                  const int v = x[((n * c.h + h) * c.w + w) * c.c + ch];
                  m = std::max(m, v);
                  sum += v;
                  ++cnt;
                }
              const int64_t idx = ((n * oh + i) * ow + j) * c.c + ch;
              ASSERT_EQ(ymax[idx], m) << cnnx::isa_name(isa) << " idx " << idx;
              auto avg = [&](int64_t div, cnnx::QuantParams in, cnnx::QuantParams out) {
                const float mul = (in.scale / out.scale) / static_cast<float>(div);
                float v = static_cast<float>(sum - cnt * in.zero_point) * mul;
                v = std::min(std::max(v, float(-out.zero_point)), float(255 - out.zero_point));
                return static_cast<int>(std::nearbyint(v)) + out.zero_point;
              };
              ASSERT_EQ(yavg[idx], avg(c.kh * c.kw, xq, yq)) << cnnx::isa_name(isa) << " " << idx;
              ASSERT_EQ(yavg2[idx], avg(cnt, xq, xq)) << cnnx::isa_name(isa) << " " << idx;
            }
    }
  }
}

TEST(QEltwise, AddQuantizeDequantizeMatchReference) {
  std::mt19937 rng(5);
  for (cnnx::Isa isa : supported_isas()) {
    IsaScope scope(isa);
    for (int64_t n : {1, 7, 16, 33, 100, 1000, 70001}) {
      auto a = random_u8(n, rng), b = random_u8(n, rng);
      const cnnx::QuantParams aq{0.03f, 128}, bq{0.05f, 0}, yq{0.06f, 255};
      for (QActivation act : {QActivation::none, QActivation::relu}) {
        const cnnx::QuantParams yq2 = act == QActivation::relu ? cnnx::QuantParams{0.06f, 20} : yq;
        std::vector<uint8_t> y(n);
        cnnx::qadd(n, a.data(), aq, b.data(), bq, yq2, act, y.data());
        for (int64_t i = 0; i < n; ++i) {
          const float t = static_cast<float>(b[i] - bq.zero_point) * (bq.scale / yq2.scale);
          float v = std::fma(static_cast<float>(a[i] - aq.zero_point), aq.scale / yq2.scale, t);
          const float lo = act == QActivation::relu ? 0.0f : float(-yq2.zero_point);
          v = std::min(std::max(v, lo), float(255 - yq2.zero_point));
          ASSERT_EQ(y[i], static_cast<int>(std::nearbyint(v)) + yq2.zero_point)
              << cnnx::isa_name(isa) << " n=" << n << " i=" << i;
        }
      }
      // quantize: values around every rounding boundary, far outside the range too.
      std::vector<float> x(n);
      std::uniform_real_distribution<float> d(-30.0f, 30.0f);
      for (int64_t i = 0; i < n; ++i) x[i] = i % 5 == 0 ? 0.25f * (i % 41 - 20) : d(rng);
      for (int32_t zp : {0, 128, 255}) {
        const cnnx::QuantParams q{0.125f, zp};
        std::vector<uint8_t> y(n);
        cnnx::quantize_u8(n, x.data(), q, y.data());
        for (int64_t i = 0; i < n; ++i) {
          float v = x[i] / q.scale;
          v = std::min(std::max(v, float(-zp)), float(255 - zp));
          ASSERT_EQ(y[i], static_cast<int>(std::nearbyint(v)) + zp)
              << cnnx::isa_name(isa) << " x=" << x[i] << " zp=" << zp;
        }
        std::vector<float> back(n);
        cnnx::dequantize_u8(n, y.data(), q, back.data());
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(back[i], static_cast<float>(y[i] - zp) * q.scale);
      }
    }
    // Half-way cases round to even: 0.5 -> 0, 1.5 -> 2, -0.5 -> 0 (zp 10: 10, 12, 10).
    const float halves[] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f};
    uint8_t hq[5];
    cnnx::quantize_u8(5, halves, {1.0f, 10}, hq);
    const uint8_t want[] = {10, 12, 12, 10, 8};
    for (int i = 0; i < 5; ++i) EXPECT_EQ(hq[i], want[i]) << cnnx::isa_name(isa);
  }
}

TEST(QEltwise, QuantizeRefusesNanAndInf) {
  for (cnnx::Isa isa : supported_isas()) {
    IsaScope scope(isa);
    for (float bad : {std::nanf(""), std::numeric_limits<float>::infinity(),
                      -std::numeric_limits<float>::infinity()}) {
      for (int64_t pos : {0, 5, 16, 40}) {
        std::vector<float> x(41, 1.0f);
        x[pos] = bad;
        std::vector<uint8_t> y(41);
        EXPECT_THROW(cnnx::quantize_u8(41, x.data(), {1.0f, 0}, y.data()), std::invalid_argument)
            << cnnx::isa_name(isa) << " pos " << pos;
      }
    }
    // Large finite values saturate instead.
    const float big[3] = {3e38f, -3e38f, 1e-30f};
    uint8_t y[3];
    cnnx::quantize_u8(3, big, {1e-3f, 7}, y);
    EXPECT_EQ(y[0], 255);
    EXPECT_EQ(y[1], 0);
    EXPECT_EQ(y[2], 7);
    EXPECT_THROW(cnnx::quantize_u8(3, big, {0.0f, 7}, y), std::invalid_argument);
    EXPECT_THROW(cnnx::quantize_u8(3, big, {1.0f, -1}, y), std::invalid_argument);
  }
}
