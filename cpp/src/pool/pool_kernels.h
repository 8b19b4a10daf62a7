// Pooling kernel bodies, written once over a vector-traits type V and
// compiled once per ISA: each pool_kernels_<isa>.cpp defines its traits and
// includes this file inside its own namespace, so no inline function is ever
// shared between translation units built with different -m flags.
//
// V provides (reg = float vector, msk = lane mask, ireg = int32 vector):
//   W, load, store, load_part(p, n), store_part(p, v, n) for n < W,
//   zero, set1, add, fmadd(a, b, c) = a*b + c,
//   max_keep(x, m)   = (x > m) ? x : m          (a NaN x is not taken)
//   isnan(x), mor(a, b), with_nan(m, k) = NaN where k else m,
//   take(x, m)       = x > m || isnan(x)        (PyTorch's update rule)
//   blend(k, a, b)   = k ? a : b,  iset1, iblend(k, a, b), ieq(a, b),
//   masked(k, v)     = k ? v : 0.
//
// Channels are the innermost, contiguous axis: each output pixel is
// computed for channel blocks of 4 vectors, then single vectors, then one
// partial vector, with accumulators in registers across the whole window.
#ifndef CNNX_POOL_KERNELS_BODY
#error "include pool_kernels.h only from a pool_kernels_<isa>.cpp file"
#endif

template <class V, int U, bool Part>
struct Block {
  using reg = typename V::reg;
  static inline reg ld(const float* p, int n) { return Part ? V::load_part(p, n) : V::load(p); }
  static inline void st(float* p, reg v, int n) {
    if (Part)
      V::store_part(p, v, n);
    else
      V::store(p, v);
  }

  // y[0:U*W] = max over the window (NaN if the window holds a NaN).
  static inline void max_window(const float* x0, int64_t row_stride, int64_t col_stride, int64_t nh,
                                int64_t nw, float* y, int n) {
    reg m[U];
    typename V::msk nan[U];
    for (int u = 0; u < U; ++u) {
      m[u] = V::set1(-__builtin_inff());
      nan[u] = V::mnone();
    }
    for (int64_t a = 0; a < nh; ++a) {
      const float* xr = x0 + a * row_stride;
      for (int64_t b = 0; b < nw; ++b) {
        const float* xp = xr + b * col_stride;
        for (int u = 0; u < U; ++u) {
          reg v = ld(xp + u * V::W, n);
          m[u] = V::max_keep(v, m[u]);
          nan[u] = V::mor(nan[u], V::isnan(v));
        }
      }
    }
    for (int u = 0; u < U; ++u) st(y + u * V::W, V::with_nan(m[u], nan[u]), n);
  }

  // y[0:U*W] = scale * sum over the window.
  static inline void sum_window(const float* x0, int64_t row_stride, int64_t col_stride, int64_t nh,
                                int64_t nw, float scale, float* y, int n) {
    reg acc[U];
    for (int u = 0; u < U; ++u) acc[u] = V::zero();
    for (int64_t a = 0; a < nh; ++a) {
      const float* xr = x0 + a * row_stride;
      for (int64_t b = 0; b < nw; ++b) {
        const float* xp = xr + b * col_stride;
        for (int u = 0; u < U; ++u) acc[u] = V::add(acc[u], ld(xp + u * V::W, n));
      }
    }
    const reg sc = V::set1(scale);
    for (int u = 0; u < U; ++u) st(y + u * V::W, V::mul(acc[u], sc), n);
  }

  // One input row of a window into the running result y[0:U*W]: first
  // starts it, last finishes it (NaN marking for max, scaling for sums).
  static inline void max_row(const float* x0, int64_t col_stride, int64_t nw, bool first, float* y,
                             int n) {
    reg m[U];
    typename V::msk nan[U];
    for (int u = 0; u < U; ++u) {
      m[u] = first ? V::set1(-__builtin_inff()) : ld(y + u * V::W, n);
      nan[u] = V::mnone();
    }
    for (int64_t b = 0; b < nw; ++b) {
      const float* xp = x0 + b * col_stride;
      for (int u = 0; u < U; ++u) {
        reg v = ld(xp + u * V::W, n);
        m[u] = V::max_keep(v, m[u]);
        nan[u] = V::mor(nan[u], V::isnan(v));
      }
    }
    // A stored NaN stays: max_keep(x, NaN) keeps the NaN.
    for (int u = 0; u < U; ++u) st(y + u * V::W, V::with_nan(m[u], nan[u]), n);
  }

  static inline void sum_row(const float* x0, int64_t col_stride, int64_t nw, bool first, float* y,
                             int n) {
    reg acc[U];
    for (int u = 0; u < U; ++u) acc[u] = first ? V::zero() : ld(y + u * V::W, n);
    for (int64_t b = 0; b < nw; ++b) {
      const float* xp = x0 + b * col_stride;
      for (int u = 0; u < U; ++u) acc[u] = V::add(acc[u], ld(xp + u * V::W, n));
    }
    for (int u = 0; u < U; ++u) st(y + u * V::W, acc[u], n);
  }

  static inline void scale(float* y, float s, int n) {
    const reg sc = V::set1(s);
    for (int u = 0; u < U; ++u) st(y + u * V::W, V::mul(ld(y + u * V::W, n), sc), n);
  }

  // Add dy to dx at the window's first maximum (last NaN, if any). With
  // Overwrite (windows tile the input exactly) store dy or 0 instead of
  // adding, so dx needs neither zeroing nor reading.
  template <bool Overwrite>
  static inline void max_scatter(const float* x0, float* dx0, int64_t row_stride,
                                 int64_t col_stride, int64_t nh, int64_t nw, const float* dy,
                                 int n) {
    reg m[U];
    typename V::ireg idx[U];
    for (int u = 0; u < U; ++u) {
      m[u] = V::set1(-__builtin_inff());
      idx[u] = V::iset1(0);
    }
    int32_t pos = 0;
    for (int64_t a = 0; a < nh; ++a) {
      const float* xr = x0 + a * row_stride;
      for (int64_t b = 0; b < nw; ++b, ++pos) {
        const float* xp = xr + b * col_stride;
        const typename V::ireg pv = V::iset1(pos);
        for (int u = 0; u < U; ++u) {
          reg v = ld(xp + u * V::W, n);
          typename V::msk k = V::take(v, m[u]);
          m[u] = V::blend(k, v, m[u]);
          idx[u] = V::iblend(k, pv, idx[u]);
        }
      }
    }
    reg g[U];
    for (int u = 0; u < U; ++u) g[u] = ld(dy + u * V::W, n);
    pos = 0;
    for (int64_t a = 0; a < nh; ++a) {
      float* dr = dx0 + a * row_stride;
      for (int64_t b = 0; b < nw; ++b, ++pos) {
        float* dp = dr + b * col_stride;
        const typename V::ireg pv = V::iset1(pos);
        for (int u = 0; u < U; ++u) {
          typename V::msk k = V::ieq(idx[u], pv);
          if (Overwrite) {
            st(dp + u * V::W, V::masked(k, g[u]), n);
          } else {
            reg d = ld(dp + u * V::W, n);
            st(dp + u * V::W, V::add(d, V::masked(k, g[u])), n);
          }
        }
      }
    }
  }
};

// Runs body<U, Part>(c, n) over the channel range [c0, c1).
template <class V, class F4, class F1, class FP>
inline void channel_blocks(int64_t c0, int64_t c1, F4 f4, F1 f1, FP fp) {
  int64_t c = c0;
  for (; c + 4 * V::W <= c1; c += 4 * V::W) f4(c);
  for (; c + V::W <= c1; c += V::W) f1(c);
  if (c < c1) fp(c, static_cast<int>(c1 - c));
}

// Whole windows per output pixel (used when n_C is not a multiple of the
// vector width: a partial vector stored and read back with masks stalls).
template <class V>
void max_forward_rows_window(const pool::Plan& p, const float* x, float* y, int64_t r0,
                             int64_t r1) {
  const int64_t C = p.c, rs = p.w * p.c;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t img = r / p.oh, i = r % p.oh;
    const int64_t h0 = p.h_lo[i], nh = p.h_hi[i] - h0;
    const float* xi = x + (img * p.h + h0) * rs;
    float* yr = y + r * p.ow * C;
    for (int64_t j = 0; j < p.ow; ++j) {
      const int64_t w0 = p.w_lo[j], nw = p.w_hi[j] - w0;
      const float* xw = xi + w0 * C;
      float* yp = yr + j * C;
      channel_blocks<V>(
          0, C,
          [&](int64_t c) { Block<V, 4, false>::max_window(xw + c, rs, C, nh, nw, yp + c, 0); },
          [&](int64_t c) { Block<V, 1, false>::max_window(xw + c, rs, C, nh, nw, yp + c, 0); },
          [&](int64_t c, int n) {
            Block<V, 1, true>::max_window(xw + c, rs, C, nh, nw, yp + c, n);
          });
    }
  }
}

template <class V>
void avg_forward_rows(const pool::Plan& p, const float* x, float* y, int64_t r0, int64_t r1) {
  const int64_t C = p.c, rs = p.w * p.c;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t img = r / p.oh, i = r % p.oh;
    const int64_t h0 = p.h_lo[i], nh = p.h_hi[i] - h0;
    const float* xi = x + (img * p.h + h0) * rs;
    float* yr = y + r * p.ow * C;
    for (int64_t j = 0; j < p.ow; ++j) {
      const int64_t w0 = p.w_lo[j], nw = p.w_hi[j] - w0;
      const float scale = p.h_inv[i] * p.w_inv[j];
      const float* xw = xi + w0 * C;
      float* yp = yr + j * C;
      channel_blocks<V>(
          0, C,
          [&](int64_t c) {
            Block<V, 4, false>::sum_window(xw + c, rs, C, nh, nw, scale, yp + c, 0);
          },
          [&](int64_t c) {
            Block<V, 1, false>::sum_window(xw + c, rs, C, nh, nw, scale, yp + c, 0);
          },
          [&](int64_t c, int n) {
            Block<V, 1, true>::sum_window(xw + c, rs, C, nh, nw, scale, yp + c, n);
          });
    }
  }
}

// Row-streaming forms: for each output row, walk its input rows one after
// the other (one sequential stream) and keep the running results in y.
template <class V>
void max_forward_rows(const pool::Plan& p, const float* x, float* y, int64_t r0, int64_t r1) {
  const int64_t C = p.c, rs = p.w * p.c;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t img = r / p.oh, i = r % p.oh;
    float* yr = y + r * p.ow * C;
    for (int64_t h = p.h_lo[i]; h < p.h_hi[i]; ++h) {
      const bool first = h == p.h_lo[i];
      const float* xr = x + (img * p.h + h) * rs;
      for (int64_t j = 0; j < p.ow; ++j) {
        const int64_t w0 = p.w_lo[j], nw = p.w_hi[j] - w0;
        const float* xw = xr + w0 * C;
        float* yp = yr + j * C;
        channel_blocks<V>(
            0, C, [&](int64_t c) { Block<V, 4, false>::max_row(xw + c, C, nw, first, yp + c, 0); },
            [&](int64_t c) { Block<V, 1, false>::max_row(xw + c, C, nw, first, yp + c, 0); },
            [&](int64_t c, int n) { Block<V, 1, true>::max_row(xw + c, C, nw, first, yp + c, n); });
      }
    }
  }
}

template <class V>
void avg_forward_rows_stream(const pool::Plan& p, const float* x, float* y, int64_t r0,
                             int64_t r1) {
  const int64_t C = p.c, rs = p.w * p.c;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t img = r / p.oh, i = r % p.oh;
    float* yr = y + r * p.ow * C;
    for (int64_t h = p.h_lo[i]; h < p.h_hi[i]; ++h) {
      const bool first = h == p.h_lo[i];
      const float* xr = x + (img * p.h + h) * rs;
      for (int64_t j = 0; j < p.ow; ++j) {
        const int64_t w0 = p.w_lo[j], nw = p.w_hi[j] - w0;
        const float* xw = xr + w0 * C;
        float* yp = yr + j * C;
        channel_blocks<V>(
            0, C, [&](int64_t c) { Block<V, 4, false>::sum_row(xw + c, C, nw, first, yp + c, 0); },
            [&](int64_t c) { Block<V, 1, false>::sum_row(xw + c, C, nw, first, yp + c, 0); },
            [&](int64_t c, int n) { Block<V, 1, true>::sum_row(xw + c, C, nw, first, yp + c, n); });
      }
    }
    for (int64_t j = 0; j < p.ow; ++j) {
      const float sc = p.h_inv[i] * p.w_inv[j];
      float* yp = yr + j * C;
      channel_blocks<V>(
          0, C, [&](int64_t c) { Block<V, 4, false>::scale(yp + c, sc, 0); },
          [&](int64_t c) { Block<V, 1, false>::scale(yp + c, sc, 0); },
          [&](int64_t c, int n) { Block<V, 1, true>::scale(yp + c, sc, n); });
    }
  }
}

template <class V, bool Overwrite>
void max_backward_block(const pool::Plan& p, const float* x, const float* dy, float* dx,
                        int64_t img, int64_t i0, int64_t i1, int64_t c0, int64_t c1) {
  const int64_t C = p.c, rs = p.w * p.c;
  const float* xi = x + img * p.h * rs;
  float* dxi = dx + img * p.h * rs;
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t h0 = p.h_lo[i], nh = p.h_hi[i] - h0;
    const float* dyr = dy + (img * p.oh + i) * p.ow * C;
    for (int64_t j = 0; j < p.ow; ++j) {
      const int64_t w0 = p.w_lo[j], nw = p.w_hi[j] - w0;
      const int64_t off = h0 * rs + w0 * C;
      const float* xw = xi + off;
      float* dw = dxi + off;
      const float* g = dyr + j * C;
      channel_blocks<V>(
          c0, c1,
          [&](int64_t c) {
            Block<V, 4, false>::template max_scatter<Overwrite>(xw + c, dw + c, rs, C, nh, nw,
                                                                g + c, 0);
          },
          [&](int64_t c) {
            Block<V, 1, false>::template max_scatter<Overwrite>(xw + c, dw + c, rs, C, nh, nw,
                                                                g + c, 0);
          },
          [&](int64_t c, int n) {
            Block<V, 1, true>::template max_scatter<Overwrite>(xw + c, dw + c, rs, C, nh, nw, g + c,
                                                               n);
          });
    }
  }
}

// dx[t_h, t_w] = sum over the windows (i, j) that read it of dy[i, j] / div(i, j).
template <class V, int U, bool Part>
inline void avg_gather(const float* dyi, int64_t ow, int64_t C, const float* h_inv,
                       const float* w_inv, int64_t i0, int64_t i1, int64_t j0, int64_t j1, float* d,
                       int n) {
  using B = Block<V, U, Part>;
  typename V::reg acc[U];
  for (int u = 0; u < U; ++u) acc[u] = V::zero();
  for (int64_t i = i0; i < i1; ++i) {
    const float* dyr = dyi + i * ow * C;
    for (int64_t j = j0; j < j1; ++j) {
      const typename V::reg sc = V::set1(h_inv[i] * w_inv[j]);
      const float* g = dyr + j * C;
      for (int u = 0; u < U; ++u) acc[u] = V::fmadd(B::ld(g + u * V::W, n), sc, acc[u]);
    }
  }
  for (int u = 0; u < U; ++u) B::st(d + u * V::W, acc[u], n);
}

template <class V>
void avg_backward_rows(const pool::Plan& p, const float* dy, float* dx, int64_t r0, int64_t r1) {
  const int64_t C = p.c;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t img = r / p.h, t = r % p.h;
    const int64_t i0 = p.h_first[t], i1 = p.h_last[t];
    const float* dyi = dy + img * p.oh * p.ow * C;
    float* dxr = dx + r * p.w * C;
    for (int64_t tw = 0; tw < p.w; ++tw) {
      const int64_t j0 = p.w_first[tw], j1 = p.w_last[tw];
      float* d = dxr + tw * C;
      channel_blocks<V>(
          0, C,
          [&](int64_t c) {
            avg_gather<V, 4, false>(dyi + c, p.ow, C, p.h_inv, p.w_inv, i0, i1, j0, j1, d + c, 0);
          },
          [&](int64_t c) {
            avg_gather<V, 1, false>(dyi + c, p.ow, C, p.h_inv, p.w_inv, i0, i1, j0, j1, d + c, 0);
          },
          [&](int64_t c, int n) {
            avg_gather<V, 1, true>(dyi + c, p.ow, C, p.h_inv, p.w_inv, i0, i1, j0, j1, d + c, n);
          });
    }
  }
}

// Dilated max pooling: whole windows per output pixel, taps dil_h rows and
// dil_w columns apart (lo / hi as in Axis::dil: the first real tap and one
// past the last; a window without real taps gives -inf, as PyTorch).
inline int64_t taps(int64_t lo, int64_t hi, int64_t d) {
  return hi > lo ? (hi - lo + d - 1) / d : 0;
}

template <class V>
void max_forward_rows_dilated(const pool::Plan& p, const float* x, float* y, int64_t r0,
                              int64_t r1) {
  const int64_t C = p.c, rs = p.w * p.c;
  const int64_t row_step = p.dil_h * rs, col_step = p.dil_w * C;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t img = r / p.oh, i = r % p.oh;
    const int64_t h0 = p.h_lo[i], nh = taps(h0, p.h_hi[i], p.dil_h);
    const float* xi = x + (img * p.h + h0) * rs;
    float* yr = y + r * p.ow * C;
    for (int64_t j = 0; j < p.ow; ++j) {
      const int64_t w0 = p.w_lo[j], nw = taps(w0, p.w_hi[j], p.dil_w);
      const float* xw = xi + w0 * C;
      float* yp = yr + j * C;
      channel_blocks<V>(
          0, C,
          [&](int64_t c) {
            Block<V, 4, false>::max_window(xw + c, row_step, col_step, nh, nw, yp + c, 0);
          },
          [&](int64_t c) {
            Block<V, 1, false>::max_window(xw + c, row_step, col_step, nh, nw, yp + c, 0);
          },
          [&](int64_t c, int n) {
            Block<V, 1, true>::max_window(xw + c, row_step, col_step, nh, nw, yp + c, n);
          });
    }
  }
}

template <class V>
void max_backward_block_dilated(const pool::Plan& p, const float* x, const float* dy, float* dx,
                                int64_t img, int64_t i0, int64_t i1, int64_t c0, int64_t c1) {
  const int64_t C = p.c, rs = p.w * p.c;
  const int64_t row_step = p.dil_h * rs, col_step = p.dil_w * C;
  const float* xi = x + img * p.h * rs;
  float* dxi = dx + img * p.h * rs;
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t h0 = p.h_lo[i], nh = taps(h0, p.h_hi[i], p.dil_h);
    if (nh == 0) continue;
    const float* dyr = dy + (img * p.oh + i) * p.ow * C;
    for (int64_t j = 0; j < p.ow; ++j) {
      const int64_t w0 = p.w_lo[j], nw = taps(w0, p.w_hi[j], p.dil_w);
      if (nw == 0) continue;
      const int64_t off = h0 * rs + w0 * C;
      const float* xw = xi + off;
      float* dw = dxi + off;
      const float* g = dyr + j * C;
      channel_blocks<V>(
          c0, c1,
          [&](int64_t c) {
            Block<V, 4, false>::template max_scatter<false>(xw + c, dw + c, row_step, col_step, nh,
                                                            nw, g + c, 0);
          },
          [&](int64_t c) {
            Block<V, 1, false>::template max_scatter<false>(xw + c, dw + c, row_step, col_step, nh,
                                                            nw, g + c, 0);
          },
          [&](int64_t c, int n) {
            Block<V, 1, true>::template max_scatter<false>(xw + c, dw + c, row_step, col_step, nh,
                                                           nw, g + c, n);
          });
    }
  }
}
