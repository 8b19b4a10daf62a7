// SGEMM against the naive triple loop: sampled sizes 1..67 in each
// dimension, both transposes, alpha/beta, padded leading dimensions, the
// epilogue, and every ISA the CPU supports.
#include <gtest/gtest.h>

#include <random>

#include "cnnx/gemm.h"
#include "cnnx/threading.h"
#include "gemm/ukernel.h"
#include "test_util.h"

using cnnx::Trans;
using namespace cnnx_test;

namespace {

struct Case {
  Trans ta, tb;
  int64_t M, N, K;
  float alpha, beta;
  int64_t pad;  // extra leading-dimension columns
  cnnx::GemmEpilogue ep;
};

void run_case(const Case& c, uint32_t seed, int threads) {
  const int64_t a_rows = c.ta == Trans::N ? c.M : c.K, a_cols = c.ta == Trans::N ? c.K : c.M;
  const int64_t b_rows = c.tb == Trans::N ? c.K : c.N, b_cols = c.tb == Trans::N ? c.N : c.K;
  const int64_t lda = a_cols + c.pad, ldb = b_cols + c.pad, ldc = c.N + c.pad;
  auto A = random_vector(a_rows * lda, seed);
  auto B = random_vector(b_rows * ldb, seed + 1);
  auto C = random_vector(c.M * ldc, seed + 2);
  auto bias = random_vector(c.N, seed + 3);
  auto ep = c.ep;
  if (ep.bias) ep.bias = bias.data();
  std::vector<float> expect = C;
  cnnx::sgemm(c.ta, c.tb, c.M, c.N, c.K, c.alpha, A.data(), lda, B.data(), ldb, c.beta, C.data(),
              ldc, ep, threads);
  cnnx::sgemm_reference(c.ta, c.tb, c.M, c.N, c.K, c.alpha, A.data(), lda, B.data(), ldb, c.beta,
                        expect.data(), ldc, ep);
  for (int64_t i = 0; i < c.M; ++i) {
    ASSERT_TRUE(all_close(C.data() + i * ldc, expect.data() + i * ldc, c.N, 1e-4f,
                          1e-5f * static_cast<float>(c.K + 1)))
        << "row " << i << " M=" << c.M << " N=" << c.N << " K=" << c.K
        << " ta=" << static_cast<char>(c.ta) << " tb=" << static_cast<char>(c.tb)
        << " alpha=" << c.alpha << " beta=" << c.beta << " pad=" << c.pad
        << " isa=" << cnnx::isa_name(cnnx::active_isa()) << " threads=" << threads;
    // Padding columns of C must be untouched.
    for (int64_t j = c.N; j < ldc; ++j) ASSERT_EQ(C[i * ldc + j], expect[i * ldc + j]);
  }
}

}  // namespace

TEST(Gemm, SampledSizesEveryIsa) {
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int> size(1, 67);
  const float alphas[] = {1.0f, -0.5f};
  const float betas[] = {0.0f, 1.0f, 0.3f};
  for (cnnx::Isa isa : supported_isas()) {
    IsaScope scope(isa);
    for (int t = 0; t < 160; ++t) {
      Case c;
      c.ta = (t & 1) ? Trans::T : Trans::N;
      c.tb = (t & 2) ? Trans::T : Trans::N;
      c.M = size(rng);
      c.N = size(rng);
      c.K = size(rng);
      c.alpha = alphas[t % 2];
      c.beta = betas[t % 3];
      c.pad = (t % 5 == 0) ? 3 : 0;
      if (t % 7 == 0) c.ep.bias = reinterpret_cast<const float*>(1);  // replaced by run_case
      if (t % 4 == 0) c.ep.act = cnnx::Activation::relu;
      run_case(c, 100 + t, t % 3 == 0 ? 2 : 1);
    }
  }
}

TEST(Gemm, EverySizeAlongEachDimension) {
  // Each dimension alone sweeps 1..67 while the other two stay moderate,
  // so every edge-tile width of every micro-kernel is exercised.
  for (cnnx::Isa isa : supported_isas()) {
    IsaScope scope(isa);
    for (int64_t s = 1; s <= 67; ++s) {
      run_case({Trans::N, Trans::N, s, 37, 19, 1.0f, 0.0f, 0, {}}, 7 * s, 1);
      run_case({Trans::T, Trans::N, 29, s, 23, 1.0f, 1.0f, 2, {}}, 11 * s, 1);
      run_case({Trans::N, Trans::T, 31, 41, s, 0.5f, 0.0f, 1, {}}, 13 * s, 2);
    }
  }
}

TEST(Gemm, LargerThanOneCacheBlock) {
  // Crosses MC, KC and NC block boundaries, with threads.
  for (cnnx::Isa isa : supported_isas()) {
    IsaScope scope(isa);
    cnnx::GemmEpilogue ep;
    ep.bias = reinterpret_cast<const float*>(1);
    ep.act = cnnx::Activation::relu;
    run_case({Trans::N, Trans::N, 300, 4200, 530, 1.0f, 0.0f, 0, ep}, 5, 2);
    run_case({Trans::T, Trans::T, 301, 77, 600, 2.0f, 0.5f, 5, {}}, 6, 2);
  }
}

TEST(Gemm, FewRowsManyColumns) {
  // Few rows (each thread's rows fit one A block): B panels are packed in
  // groups right before use; with a split N and more than one NC block, each
  // thread keeps its panels in its own part of the buffer. Ragged K blocks
  // (K = 1100: three blocks of 368, 368, 364) and a ragged last panel.
  for (cnnx::Isa isa : supported_isas()) {
    IsaScope scope(isa);
    cnnx::GemmEpilogue ep;
    ep.bias = reinterpret_cast<const float*>(1);
    for (int threads : {1, 2}) {
      run_case({Trans::N, Trans::N, 37, 4200 + 5, 1100, 1.0f, 0.0f, 3, ep}, 11, threads);
      run_case({Trans::T, Trans::N, 9, 333, 517, -1.0f, 0.5f, 0, {}}, 12, threads);
      run_case({Trans::N, Trans::T, 64, 1000, 4096, 1.0f, 1.0f, 0, {}}, 13, threads);
    }
  }
}

TEST(Gemm, EmptyDepthScalesC) {
  for (cnnx::Isa isa : supported_isas()) {
    IsaScope scope(isa);
    run_case({Trans::N, Trans::N, 5, 9, 0, 1.0f, 0.5f, 0, {}}, 9, 1);
    run_case({Trans::N, Trans::N, 5, 9, 0, 1.0f, 0.0f, 0, {}}, 9, 1);
  }
}

TEST(Gemm, BetaZeroIgnoresNaNInC) {
  for (cnnx::Isa isa : supported_isas()) {
    IsaScope scope(isa);
    const int64_t M = 13, N = 35, K = 8;
    auto A = random_vector(M * K, 1), B = random_vector(K * N, 2);
    std::vector<float> C(M * N, std::nanf("")), R(M * N, 0.0f);
    cnnx::sgemm(Trans::N, Trans::N, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, C.data(), N);
    cnnx::sgemm_reference(Trans::N, Trans::N, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f,
                          R.data(), N);
    EXPECT_TRUE(all_close(C.data(), R.data(), M * N, 1e-5f, 1e-5f));
  }
}

TEST(Gemm, ResultDoesNotDependOnThreadCount) {
  const int64_t M = 200, N = 130, K = 300;
  auto A = random_vector(M * K, 1), B = random_vector(K * N, 2);
  std::vector<float> C1(M * N), C2(M * N);
  cnnx::sgemm(Trans::N, Trans::N, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, C1.data(), N, {},
              1);
  cnnx::sgemm(Trans::N, Trans::N, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, C2.data(), N, {},
              2);
  for (int64_t i = 0; i < M * N; ++i) ASSERT_EQ(C1[i], C2[i]);
}

TEST(Gemm, EveryMicroKernelVariant) {
  // Each built tile shape (not only the default) against the reference.
  std::vector<const char*> names = {cnnx::kGemmGeneric.name};
  if (cnnx::detected_isa() >= cnnx::Isa::avx2)
    for (int i = 0; i < cnnx::kGemmAvx2VariantCount; ++i)
      names.push_back(cnnx::kGemmAvx2Variants[i].name);
  if (cnnx::detected_isa() >= cnnx::Isa::avx512)
    for (int i = 0; i < cnnx::kGemmAvx512VariantCount; ++i)
      names.push_back(cnnx::kGemmAvx512Variants[i].name);
  for (const char* name : names) {
    ASSERT_TRUE(cnnx::set_gemm_variant(name)) << name;
    for (int64_t s = 1; s <= 40; s += 3) {
      run_case({Trans::N, Trans::N, s, s + 17, 33, 1.0f, 0.0f, 0, {}}, 3 * s, 1);
      run_case({Trans::T, Trans::T, s + 5, s, 300, 1.0f, 0.5f, 1, {}}, 5 * s, 2);
    }
  }
  cnnx::set_gemm_variant(nullptr);
}
