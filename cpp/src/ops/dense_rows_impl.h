// The few-row dense kernels (see dense_rows.h), written once over a SIMD
// vector type V (common/vec_*.h) and compiled per ISA: dense_rows__avx512.cpp
// and dense_rows__avx2.cpp define CNNX_DENSE_ROWS_V and include this file
// inside an anonymous namespace of their own (after <cstdint>).
//
// y[m, :] = act(x[m, :] @ w + b) streams w once, straight from its
// row-major (in, out) memory: the packed GEMM would first copy all of w into
// panels, which for one row costs more than the product itself. Columns go in
// blocks of up to four vectors (the last ones masked); with few rows and
// columns the k loop keeps interleaved partial sums so that the FMAs do not
// wait on each other's latency.
using V = CNNX_DENSE_ROWS_V;
constexpr int W = V::W;

// Partial sums over k: enough independent FMA chains for the latency, within
// the register file (32 vectors on AVX-512, 16 on AVX2).
template <int M, int NV>
constexpr int k_splits() {
  return (M * NV >= 8) ? 1 : (V::kRegs >= 32 && M * NV < 4 ? 4 : 2);
}

// Columns [j0, j0 + ncols), ncols <= W * NV; rows of w, y have stride ld.
template <int M, int NV>
void block(const float* x, int64_t in, const float* w, int64_t ld, int64_t j0, int64_t ncols,
           const float* bias, bool relu, float* y) {
  constexpr int KS = k_splits<M, NV>();
  V::tail mk[NV];
  for (int v = 0; v < NV; ++v) mk[v] = V::tail_mask(ncols - W * v);
  V::reg acc[KS][M][NV];
  for (int s = 0; s < KS; ++s)
    for (int m = 0; m < M; ++m)
      for (int v = 0; v < NV; ++v) acc[s][m][v] = V::zero();
  const float* wj = w + j0;
  int64_t k = 0;
  for (; k + KS <= in; k += KS) {
#pragma GCC unroll 4
    for (int s = 0; s < KS; ++s) {
      const float* wk = wj + (k + s) * ld;
      V::reg bv[NV];
      for (int v = 0; v < NV; ++v) bv[v] = V::load_tail(wk + W * v, mk[v]);
      for (int m = 0; m < M; ++m) {
        const V::reg a = V::set1(x[m * in + k + s]);
        for (int v = 0; v < NV; ++v) acc[s][m][v] = V::fmadd(a, bv[v], acc[s][m][v]);
      }
    }
  }
  for (; k < in; ++k) {
    const float* wk = wj + k * ld;
    for (int v = 0; v < NV; ++v) {
      const V::reg bv = V::load_tail(wk + W * v, mk[v]);
      for (int m = 0; m < M; ++m) acc[0][m][v] = V::fmadd(V::set1(x[m * in + k]), bv, acc[0][m][v]);
    }
  }
  const V::reg zero = V::zero();
  for (int v = 0; v < NV; ++v) {
    const V::reg bb = bias ? V::load_tail(bias + j0 + W * v, mk[v]) : zero;
    for (int m = 0; m < M; ++m) {
      V::reg r = acc[0][m][v];
      for (int s = 1; s < KS; ++s) r = V::add(r, acc[s][m][v]);
      r = V::add(r, bb);
      if (relu) r = V::max(zero, r);  // NaN passes, as std::max(v, 0)
      V::store_tail(y + m * ld + j0 + W * v, mk[v], r);
    }
  }
}

template <int M>
void rows(const float* x, const float* w, const float* b, float* y, int64_t in, int64_t out,
          int64_t c0, int64_t c1, bool relu) {
  int64_t j = c0;
  for (; j + 4 * W <= c1; j += 4 * W) block<M, 4>(x, in, w, out, j, 4 * W, b, relu, y);
  const int64_t rem = c1 - j;
  if (rem > 3 * W)
    block<M, 4>(x, in, w, out, j, rem, b, relu, y);
  else if (rem > 2 * W)
    block<M, 3>(x, in, w, out, j, rem, b, relu, y);
  else if (rem > W)
    block<M, 2>(x, in, w, out, j, rem, b, relu, y);
  else if (rem > 0)
    block<M, 1>(x, in, w, out, j, rem, b, relu, y);
}

// dw[k, j0:j0+4W] = sum_m x[m, k] * dy[m, j0:j0+4W] for every k: dy's block
// stays in registers while dw streams out row by row.
template <int M>
void outer_block(const float* x, int64_t in, const float* dy, int64_t out, int64_t j0, float* dw) {
  V::tail mk[4];
  for (int v = 0; v < 4; ++v) mk[v] = V::tail_mask(out - j0 - W * v);
  V::reg d[M][4];
  for (int m = 0; m < M; ++m)
    for (int v = 0; v < 4; ++v) d[m][v] = V::load_tail(dy + m * out + j0 + W * v, mk[v]);
  for (int64_t k = 0; k < in; ++k) {
    V::reg r[4];
    const V::reg a0 = V::set1(x[k]);
    for (int v = 0; v < 4; ++v) r[v] = V::mul(a0, d[0][v]);
    for (int m = 1; m < M; ++m) {
      const V::reg a = V::set1(x[m * in + k]);
      for (int v = 0; v < 4; ++v) r[v] = V::fmadd(a, d[m][v], r[v]);
    }
    float* row = dw + k * out + j0;
    for (int v = 0; v < 4; ++v) V::store_tail(row + W * v, mk[v], r[v]);
  }
}

// dx[m, k] = dot(dy[m, :], w[k, :]) for k in [k0, k1).
template <int M>
void dots(const float* dy, const float* w, int64_t out, int64_t k0, int64_t k1, float* dx,
          int64_t in) {
  for (int64_t k = k0; k < k1; ++k) {
    const float* wk = w + k * out;
    V::reg acc[M];
    for (int m = 0; m < M; ++m) acc[m] = V::zero();
    for (int64_t j = 0; j < out; j += W) {
      const V::tail mk = V::tail_mask(out - j);
      const V::reg wv = V::load_tail(wk + j, mk);
      for (int m = 0; m < M; ++m) acc[m] = V::fmadd(V::load_tail(dy + m * out + j, mk), wv, acc[m]);
    }
    for (int m = 0; m < M; ++m) dx[m * in + k] = V::hsum(acc[m]);
  }
}

void forward(const float* x, const float* w, const float* b, float* y, int64_t M, int64_t in,
             int64_t out, int64_t c0, int64_t c1, bool relu) {
  switch (M) {
    case 1: rows<1>(x, w, b, y, in, out, c0, c1, relu); return;
    case 2: rows<2>(x, w, b, y, in, out, c0, c1, relu); return;
    case 3: rows<3>(x, w, b, y, in, out, c0, c1, relu); return;
    default: rows<4>(x, w, b, y, in, out, c0, c1, relu); return;
  }
}

void backward(const float* dy, const float* x, const float* w, float* dx, float* dw, int64_t M,
              int64_t in, int64_t out, int64_t c0, int64_t c1, int64_t k0, int64_t k1) {
  if (dw) {
    for (int64_t j = c0; j < c1; j += 4 * W) {
      switch (M) {
        case 1: outer_block<1>(x, in, dy, out, j, dw); break;
        case 2: outer_block<2>(x, in, dy, out, j, dw); break;
        case 3: outer_block<3>(x, in, dy, out, j, dw); break;
        default: outer_block<4>(x, in, dy, out, j, dw); break;
      }
    }
  }
  if (dx) {
    switch (M) {
      case 1: dots<1>(dy, w, out, k0, k1, dx, in); break;
      case 2: dots<2>(dy, w, out, k0, k1, dx, in); break;
      case 3: dots<3>(dy, w, out, k0, k1, dx, in); break;
      default: dots<4>(dy, w, out, k0, k1, dx, in); break;
    }
  }
}
