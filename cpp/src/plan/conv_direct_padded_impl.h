// The padded direct convolution's tiles (see conv_direct_padded.h), written
// once over a SIMD vector type V (common/vec_*.h) and compiled per ISA:
// conv_direct_padded__avx512.cpp and conv_direct_padded__avx2.cpp define
// CNNX_DIRECT_PADDED_V, include this file inside an anonymous namespace of
// their own and pick the tile sizes for their register file.

using V = CNNX_DIRECT_PADDED_V;
constexpr int W = V::W;

// R output pixels x NV*W output channels in registers. For each filter row
// and each of the K*CIN patch values of that row: NV weight loads, then R
// broadcast FMAs whose addresses differ by the constant S*CIN floats.
template <int CIN, int S, int R, int NV, int K>
void tile(const float* row0, int64_t Wp_floats, const float* w, int64_t cout,
          const DirectEpilogue& ep, int64_t co, float* y, const float* res, int64_t ldy,
          int valid) {
  V::reg acc[R][NV];
#pragma GCC unroll 32
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[r][j] = V::zero();
  for (int kh = 0; kh < K; ++kh) {
    const float* a = row0 + kh * Wp_floats;
    const float* wk = w + kh * K * CIN * cout;
    for (int l = 0; l < K * CIN; ++l) {
      V::reg wv[NV];
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) wv[j] = V::load(wk + l * cout + W * j);
#pragma GCC unroll 32
      for (int r = 0; r < R; ++r) {
        const V::reg av = V::set1(a[r * S * CIN + l]);
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) acc[r][j] = V::fmadd(av, wv[j], acc[r][j]);
      }
    }
  }
  const V::reg zero = V::zero();
  V::reg b[NV], sc[NV];
  for (int j = 0; j < NV; ++j) {
    b[j] = ep.bias ? V::load(ep.bias + co + W * j) : zero;
    sc[j] = ep.scale ? V::load(ep.scale + co + W * j) : V::set1(1.0f);
  }
  const bool relu = ep.relu;
#pragma GCC unroll 32
  for (int r = 0; r < R; ++r) {
    if (r >= valid) break;
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      V::reg v = V::fmadd(acc[r][j], sc[j], b[j]);
      if (res) v = V::add(v, V::load(res + r * ldy + W * j));
      if (relu) v = V::max(zero, v);  // NaN passes, as std::max(v, 0)
      V::store(y + r * ldy + W * j, v);
    }
  }
}

template <int CIN, int S, int R, int NV, int K = 3>
void rows(const Conv2dShape& s, const float* xp, int64_t Wp, const float* w,
          const DirectEpilogue& ep, float* y, int64_t row0, int64_t row1) {
  const int64_t OW = s.out_w(), Cout = s.C_out;
  for (int64_t oh = row0; oh < row1; ++oh) {
    const float* in_row = xp + oh * S * Wp * CIN;
    float* out_row = y + oh * OW * Cout;
    for (int64_t ow = 0; ow < OW; ow += R) {
      const int valid = static_cast<int>(std::min<int64_t>(R, OW - ow));
      for (int64_t co = 0; co < Cout; co += W * NV)
        tile<CIN, S, R, NV, K>(in_row + ow * S * CIN, Wp * CIN, w + co, Cout, ep, co,
                               out_row + ow * Cout + co,
                               ep.res ? ep.res + (oh * OW + ow) * Cout + co : nullptr, Cout, valid);
    }
  }
}

// One input channel (a grey-image stem), 3x3 stride 1, W output channels per
// tile: each input pixel of a row segment is broadcast once and meets the
// three taps of the filter row, so the kernel does 3 FMAs per broadcast (the
// general tile would reload the same pixel three times, and GCC's attempts to
// reuse those loads spill).
template <int R>
void tile_c1(const float* row0, int64_t Wp, const float* w, int64_t cout, const DirectEpilogue& ep,
             int64_t co, float* y, const float* res, int64_t ldy, int valid) {
  V::reg acc[R];
#pragma GCC unroll 32
  for (int r = 0; r < R; ++r) acc[r] = V::zero();
  for (int kh = 0; kh < 3; ++kh) {
    const float* a = row0 + kh * Wp;
    const V::reg w0 = V::load(w + (kh * 3 + 0) * cout);
    const V::reg w1 = V::load(w + (kh * 3 + 1) * cout);
    const V::reg w2 = V::load(w + (kh * 3 + 2) * cout);
#pragma GCC unroll 40
    for (int j = 0; j < R + 2; ++j) {
      const V::reg v = V::set1(a[j]);
      if (j < R) acc[j] = V::fmadd(v, w0, acc[j]);
      if (j >= 1 && j - 1 < R) acc[j - 1] = V::fmadd(v, w1, acc[j - 1]);
      if (j >= 2) acc[j - 2] = V::fmadd(v, w2, acc[j - 2]);
    }
  }
  const V::reg zero = V::zero();
  const V::reg b = ep.bias ? V::load(ep.bias + co) : zero;
  const V::reg sc = ep.scale ? V::load(ep.scale + co) : V::set1(1.0f);
  const bool relu = ep.relu;
#pragma GCC unroll 32
  for (int r = 0; r < R; ++r) {
    if (r >= valid) break;
    V::reg v = V::fmadd(acc[r], sc, b);
    if (res) v = V::add(v, V::load(res + r * ldy));
    if (relu) v = V::max(zero, v);
    V::store(y + r * ldy, v);
  }
}

template <int R>
void rows_c1(const Conv2dShape& s, const float* xp, int64_t Wp, const float* w,
             const DirectEpilogue& ep, float* y, int64_t row0, int64_t row1) {
  const int64_t OW = s.out_w(), Cout = s.C_out;
  for (int64_t oh = row0; oh < row1; ++oh) {
    const float* in_row = xp + oh * Wp;
    float* out_row = y + oh * OW * Cout;
    for (int64_t ow = 0; ow < OW; ow += R) {
      const int valid = static_cast<int>(std::min<int64_t>(R, OW - ow));
      for (int64_t co = 0; co < Cout; co += W)
        tile_c1<R>(in_row + ow, Wp, w + co, Cout, ep, co, out_row + ow * Cout + co,
                   ep.res ? ep.res + (oh * OW + ow) * Cout + co : nullptr, Cout, valid);
    }
  }
}
