// The 8-bit query of the multi-bit estimate (Kernels::ex_query), written
// once and compiled in each ISA's file with that file's flags, like
// estimate_loop.h: the compiler vectorizes it, and every level gives the same
// bits (no reassociation: the sixteen double chains stay sixteen; integer
// and exact float steps otherwise). static: each file keeps its own copy.
//
// A multi-bit search lost ~0.8 us per cluster here to a libm lround per
// dimension and one long chain of dependent double adds, and later ~9% of a
// batch to a chain of dependent max and double rounding: hence independent
// lanes, the max taken on the bit patterns (for non-negative floats their
// order as integers is their order as numbers, and integer compares vectorize
// where float ones, which could trap, stay branches), and lround in float
// arithmetic only.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace rabitq {
namespace kernels_detail {

static inline int32_t ex_query_loop(const float* __restrict qres, size_t padded_dim, int8_t* __restrict out,
                                    float* max_abs, double* norm2) {
  // Sixteen lanes: four double chains of 32+ dependent adds bounded the
  // whole function by their latency.
  int32_t mxl[16] = {};
  double n2[16] = {};  // padded_dim is a multiple of 64
  for (size_t i = 0; i < padded_dim; i += 16)
    for (size_t j = 0; j < 16; ++j) {
      const float v = qres[i + j];
      int32_t a;
      std::memcpy(&a, &v, sizeof a);
      a &= 0x7fffffff;
      mxl[j] = a > mxl[j] ? a : mxl[j];
      n2[j] += static_cast<double>(v) * v;
    }
  int32_t mxbits = 0;
  for (size_t j = 0; j < 16; ++j) mxbits = mxl[j] > mxbits ? mxl[j] : mxbits;
  for (size_t w = 8; w > 0; w /= 2)  // pairwise: (0+8, 1+9, ...), then (0+4, ...), ...
    for (size_t j = 0; j < w; ++j) n2[j] += n2[j + w];
  float mx;
  std::memcpy(&mx, &mxbits, sizeof mx);
  *max_abs = mx;
  *norm2 = n2[0];
  const float inv = mx > 0.f ? 127.f / mx : 0.f;
  // lround (half away from zero): truncate, then step away from zero when
  // the fraction (exact: x - trunc(x) is representable) is at least one half.
  int32_t s = 0;
  for (size_t i = 0; i < padded_dim; ++i) {
    // No float comparisons (they could trap, so GCC keeps them as branches):
    // 2 * frac (exact) truncates to +-1 exactly when |frac| >= 1/2.
    const float x = qres[i] * inv;
    const int32_t t = static_cast<int32_t>(x);
    const float frac = x - static_cast<float>(t);
    int32_t v = t + static_cast<int32_t>(frac * 2.f);
    v = v > 127 ? 127 : v;
    v = v < -127 ? -127 : v;
    out[i] = static_cast<int8_t>(v);
    s += v;
  }
  return s;
}

}  // namespace kernels_detail
}  // namespace rabitq
