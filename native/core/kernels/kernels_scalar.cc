// Portable reference kernels. Every SIMD version is tested against these;
// they are also the path on CPUs (and architectures) without AVX2.
#include <cstring>

#include "estimate_loop.h"
#include "ex_layout.h"
#include "ex_query_loop.h"
#include "kernels.h"

namespace rabitq {
namespace {

float l2sq_scalar(const float* a, const float* b, size_t d) {
  float s = 0.f;
  for (size_t i = 0; i < d; ++i) {
    float t = a[i] - b[i];
    s += t * t;
  }
  return s;
}

float dot_scalar(const float* a, const float* b, size_t d) {
  float s = 0.f;
  for (size_t i = 0; i < d; ++i) s += a[i] * b[i];
  return s;
}

void minmax_scalar(const float* x, size_t d, float* lo, float* hi) {
  float mn = x[0], mx = x[0];
  for (size_t i = 1; i < d; ++i) {
    if (x[i] < mn) mn = x[i];
    if (x[i] > mx) mx = x[i];
  }
  *lo = mn;
  *hi = mx;
}

uint32_t quantize_scalar(const float* x, size_t d, float lo, float inv_delta, const float* offsets, uint32_t maxval,
                         uint8_t* out) {
  uint32_t sum = 0;
  for (size_t i = 0; i < d; ++i) {
    float v = (x[i] - lo) * inv_delta;
    v = v + offsets[i];
    uint32_t q = v > 0.f ? static_cast<uint32_t>(v) : 0u;
    if (q > maxval) q = maxval;
    out[i] = static_cast<uint8_t>(q);
    sum += q;
  }
  return sum;
}

uint64_t popcount_and_scalar(const uint64_t* a, const uint64_t* b, size_t words) {
  uint64_t s = 0;
  for (size_t i = 0; i < words; ++i) s += static_cast<uint64_t>(__builtin_popcountll(a[i] & b[i]));
  return s;
}

uint64_t bitplane_ip_scalar(const uint64_t* planes, size_t bits, const uint64_t* code, size_t words) {
  uint64_t s = 0;
  for (size_t b = 0; b < bits; ++b) s += popcount_and_scalar(planes + b * words, code, words) << b;
  return s;
}

void fastscan_luts_scalar(const uint8_t* qu, size_t npairs, uint8_t* luts) {
  for (size_t m = 0; m < 2 * npairs; ++m) {
    uint8_t* lut = luts + (m / 2) * 32 + (m % 2) * 16;
    const uint8_t* q = qu + 4 * m;
    lut[0] = 0;
    for (unsigned v = 1; v < 16; ++v) lut[v] = static_cast<uint8_t>(lut[v & (v - 1)] + q[__builtin_ctz(v)]);
  }
}

[[gnu::always_inline]] inline void fastscan_scalar(const uint8_t* codes, const uint8_t* luts, size_t npairs,
                                                   uint16_t* out) {
  for (size_t j = 0; j < kFastScanBlock; ++j) {
    uint32_t s = 0;
    for (size_t p = 0; p < npairs; ++p) {
      uint8_t c = codes[p * 32 + j];
      s += luts[p * 32 + (c & 15)] + luts[p * 32 + 16 + (c >> 4)];
    }
    out[j] = static_cast<uint16_t>(s);
  }
}

void dot_tile16_scalar(const float* xs, size_t np, size_t dim, const float* ct, float* out) {
  for (size_t p = 0; p < np; ++p) {
    float acc[16] = {0};
    const float* x = xs + p * dim;
    for (size_t t = 0; t < dim; ++t) {
      const float xv = x[t];
      const float* c = ct + t * 16;
      for (int j = 0; j < 16; ++j) acc[j] += xv * c[j];
    }
    for (int j = 0; j < 16; ++j) out[p * 16 + j] = acc[j];
  }
}

void dot_tile16_f16_scalar(const float* xs, size_t np, size_t dim, const uint16_t* ct, float* out) {
  for (size_t p = 0; p < np; ++p) {
    float acc[16] = {0};
    const float* x = xs + p * dim;
    for (size_t t = 0; t < dim; ++t) {
      const float xv = x[t];
      const uint16_t* c = ct + t * 16;
      for (int j = 0; j < 16; ++j) acc[j] += xv * half_to_float(c[j]);
    }
    for (int j = 0; j < 16; ++j) out[p * 16 + j] = acc[j];
  }
}

int32_t ex_query_scalar(const float* qres, size_t padded_dim, int8_t* q, float* max_abs, double* norm2) {
  return kernels_detail::ex_query_loop(qres, padded_dim, q, max_abs, norm2);
}

}  // namespace

uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) return static_cast<uint16_t>(sign | (absx > 0x7f800000u ? 0x7e00u : 0x7c00u));
  if (absx >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow to inf
  if (absx < 0x38800000u) {                                               // subnormal or zero in half
    if (absx < 0x33000000u) return static_cast<uint16_t>(sign);
    const uint32_t mant = (absx & 0x7fffffu) | 0x800000u;
    const int shift = 113 - static_cast<int>(absx >> 23) + 13;
    uint32_t h = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1u), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1u))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  uint32_t h = ((absx - 0x38000000u) >> 13);
  const uint32_t rem = absx & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, x;
  if (exp == 0) {
    if (mant == 0) {
      x = sign;
    } else {
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      x = sign | (static_cast<uint32_t>(112 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    x = sign | 0x7f800000u | (mant << 13);
  } else {
    x = sign | ((exp + 112) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

[[gnu::always_inline]] inline uint32_t estimate_scalar(const float* factors, const uint16_t* ip, size_t n,
                                                       const EstimateParams& p, float threshold, float* est,
                                                       float* lower) {
  kernels_detail::estimate_loop(factors, ip, n, p, est, lower);
  return kernels_detail::below_mask_loop(lower, n, threshold);
}

int64_t ex_ip_scalar(const int8_t* q, const uint8_t* sign, const uint8_t* ex, size_t padded_dim, unsigned ex_bits) {
  const ex_layout::Sections sec = ex_layout::sections(padded_dim, ex_bits);
  int64_t s = 0;
  for (size_t i = 0; i < padded_dim; ++i) {
    const unsigned u =
        (static_cast<unsigned>((sign[i / 8] >> (i % 8)) & 1u) << ex_bits) + ex_layout::get(ex, sec, ex_bits, i);
    s += static_cast<int64_t>(q[i]) * static_cast<int64_t>(u);
  }
  return s;
}

const Kernels& scalar_kernels() {
  static const Kernels k = {SimdLevel::kScalar,
                            "scalar",
                            l2sq_scalar,
                            dot_scalar,
                            minmax_scalar,
                            quantize_scalar,
                            popcount_and_scalar,
                            bitplane_ip_scalar,
                            fastscan_scalar,
                            dot_tile16_scalar,
                            dot_tile16_f16_scalar,
                            estimate_scalar,
                            ex_ip_scalar,
                            fastscan_luts_scalar,
                            kernels_detail::scan_blocks_loop<fastscan_scalar, estimate_scalar>,
                            kernels_detail::indices_below_loop,
                            ex_query_scalar};
  return k;
}

}  // namespace rabitq
