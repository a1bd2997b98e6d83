// AVX-512 (F/BW/VL) kernels, with VPOPCNTDQ popcount kernels compiled behind a
// per-function target attribute: dispatch.cc only installs those when CPUID
// reports VPOPCNTDQ, and otherwise keeps the AVX2 popcount kernels.
#include "estimate_loop.h"
#include "kernels.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>

namespace rabitq {
namespace {

inline __mmask16 mask16(size_t n) { return static_cast<__mmask16>((1u << n) - 1u); }

float l2sq_avx512(const float* a, const float* b, size_t d) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= d; i += 32) {
    __m512 t0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
    __m512 t1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
    s0 = _mm512_fmadd_ps(t0, t0, s0);
    s1 = _mm512_fmadd_ps(t1, t1, s1);
  }
  for (; i + 16 <= d; i += 16) {
    __m512 t = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
    s0 = _mm512_fmadd_ps(t, t, s0);
  }
  if (i < d) {
    __mmask16 m = mask16(d - i);
    __m512 t = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i));
    s1 = _mm512_fmadd_ps(t, t, s1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

float dot_avx512(const float* a, const float* b, size_t d) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= d; i += 32) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
  }
  for (; i + 16 <= d; i += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
  if (i < d) {
    __mmask16 m = mask16(d - i);
    s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

void minmax_avx512(const float* x, size_t d, float* lo, float* hi) {
  __m512 mn = _mm512_set1_ps(x[0]), mx = mn;
  size_t i = 0;
  for (; i + 16 <= d; i += 16) {
    __m512 v = _mm512_loadu_ps(x + i);
    mn = _mm512_min_ps(mn, v);
    mx = _mm512_max_ps(mx, v);
  }
  if (i < d) {
    __mmask16 m = mask16(d - i);
    mn = _mm512_mask_min_ps(mn, m, mn, _mm512_maskz_loadu_ps(m, x + i));
    mx = _mm512_mask_max_ps(mx, m, mx, _mm512_maskz_loadu_ps(m, x + i));
  }
  *lo = _mm512_reduce_min_ps(mn);
  *hi = _mm512_reduce_max_ps(mx);
}

uint32_t quantize_avx512(const float* x, size_t d, float lo, float inv_delta, const float* offsets, uint32_t maxval,
                         uint8_t* out) {
  const __m512 vlo = _mm512_set1_ps(lo), vinv = _mm512_set1_ps(inv_delta);
  const __m512i vmax = _mm512_set1_epi32(static_cast<int>(maxval));
  const __m512i zero = _mm512_setzero_si512();
  __m512i sum = _mm512_setzero_si512();
  for (size_t i = 0; i < d; i += 16) {
    __mmask16 m = d - i >= 16 ? static_cast<__mmask16>(0xffff) : mask16(d - i);
    __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vlo), vinv);
    v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, offsets + i));
    __m512i q = _mm512_cvttps_epi32(v);
    q = _mm512_min_epi32(_mm512_max_epi32(q, zero), vmax);
    q = _mm512_maskz_mov_epi32(m, q);
    sum = _mm512_add_epi32(sum, q);
    _mm512_mask_cvtepi32_storeu_epi8(out + i, m, q);
  }
  return static_cast<uint32_t>(_mm512_reduce_add_epi32(sum));
}

__attribute__((target("avx512vpopcntdq"))) uint64_t popcount_and_vpopcnt(const uint64_t* a, const uint64_t* b,
                                                                         size_t words) {
  __m512i s = _mm512_setzero_si512();
  size_t i = 0;
  for (; i + 8 <= words; i += 8) {
    __m512i v = _mm512_and_si512(_mm512_loadu_si512(a + i), _mm512_loadu_si512(b + i));
    s = _mm512_add_epi64(s, _mm512_popcnt_epi64(v));
  }
  if (i < words) {
    __mmask8 m = static_cast<__mmask8>((1u << (words - i)) - 1u);
    __m512i v = _mm512_and_si512(_mm512_maskz_loadu_epi64(m, a + i), _mm512_maskz_loadu_epi64(m, b + i));
    s = _mm512_add_epi64(s, _mm512_popcnt_epi64(v));
  }
  return static_cast<uint64_t>(_mm512_reduce_add_epi64(s));
}

// The code is loaded once per 8 words and ANDed with every plane, and the
// per-plane counts are weighted at the end.
__attribute__((target("avx512vpopcntdq"))) uint64_t bitplane_ip_vpopcnt(const uint64_t* planes, size_t bits,
                                                                        const uint64_t* code, size_t words) {
  __m512i acc[8];
  for (size_t b = 0; b < 8; ++b) acc[b] = _mm512_setzero_si512();
  uint64_t total = 0;
  // Planes beyond 8 (B is at most 8 in practice) fall back to one pass each.
  const size_t fused = bits < 8 ? bits : 8;
  for (size_t i = 0; i < words; i += 8) {
    __mmask8 m = words - i >= 8 ? static_cast<__mmask8>(0xff) : static_cast<__mmask8>((1u << (words - i)) - 1u);
    __m512i c = _mm512_maskz_loadu_epi64(m, code + i);
    for (size_t b = 0; b < fused; ++b) {
      __m512i p = _mm512_maskz_loadu_epi64(m, planes + b * words + i);
      acc[b] = _mm512_add_epi64(acc[b], _mm512_popcnt_epi64(_mm512_and_si512(p, c)));
    }
  }
  for (size_t b = 0; b < fused; ++b) total += static_cast<uint64_t>(_mm512_reduce_add_epi64(acc[b])) << b;
  for (size_t b = fused; b < bits; ++b) total += popcount_and_vpopcnt(planes + b * words, code, words) << b;
  return total;
}

// Two pairs of sub-spaces per 64-byte step: bytes 0..31 are pair p for the 32
// vectors, bytes 32..63 pair p+1, and the 64 LUT bytes of the two pairs are
// spread to the matching 128-bit lanes with one shuffle each.
void fastscan_avx512(const uint8_t* codes, const uint8_t* luts, size_t npairs, uint16_t* out) {
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  const __m512i low8 = _mm512_set1_epi16(0x00ff);
  __m512i acc_even = _mm512_setzero_si512(), acc_odd = _mm512_setzero_si512();
  size_t p = 0;
  for (; p + 2 <= npairs; p += 2) {
    __m512i c = _mm512_loadu_si512(codes + p * 32);
    __m512i l = _mm512_loadu_si512(luts + p * 32);
    __m512i lut_lo = _mm512_shuffle_i64x2(l, l, _MM_SHUFFLE(2, 2, 0, 0));
    __m512i lut_hi = _mm512_shuffle_i64x2(l, l, _MM_SHUFFLE(3, 3, 1, 1));
    __m512i r = _mm512_add_epi8(_mm512_shuffle_epi8(lut_lo, _mm512_and_si512(c, low4)),
                                _mm512_shuffle_epi8(lut_hi, _mm512_and_si512(_mm512_srli_epi16(c, 4), low4)));
    acc_even = _mm512_add_epi16(acc_even, _mm512_and_si512(r, low8));
    acc_odd = _mm512_add_epi16(acc_odd, _mm512_srli_epi16(r, 8));
  }
  __m256i e = _mm256_add_epi16(_mm512_castsi512_si256(acc_even), _mm512_extracti64x4_epi64(acc_even, 1));
  __m256i o = _mm256_add_epi16(_mm512_castsi512_si256(acc_odd), _mm512_extracti64x4_epi64(acc_odd, 1));
  if (p < npairs) {
    const __m256i l4 = _mm256_set1_epi8(0x0f);
    const __m256i l8 = _mm256_set1_epi16(0x00ff);
    __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + p * 32));
    __m256i lut_lo = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(luts + p * 32)));
    __m256i lut_hi = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(luts + p * 32 + 16)));
    __m256i r = _mm256_add_epi8(_mm256_shuffle_epi8(lut_lo, _mm256_and_si256(c, l4)),
                                _mm256_shuffle_epi8(lut_hi, _mm256_and_si256(_mm256_srli_epi16(c, 4), l4)));
    e = _mm256_add_epi16(e, _mm256_and_si256(r, l8));
    o = _mm256_add_epi16(o, _mm256_srli_epi16(r, 8));
  }
  // Interleave even and odd vectors back into order 0..31.
  __m256i lo = _mm256_unpacklo_epi16(e, o);  // vectors 0..7 | 16..23
  __m256i hi = _mm256_unpackhi_epi16(e, o);  // vectors 8..15 | 24..31
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_permute2x128_si256(lo, hi, 0x20));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 16), _mm256_permute2x128_si256(lo, hi, 0x31));
}

void dot_tile16_avx512(const float* xs, size_t np, size_t dim, const float* ct, float* out) {
  size_t p = 0;
  for (; p + 8 <= np; p += 8) {
    __m512 a[8];
    for (int r = 0; r < 8; ++r) a[r] = _mm512_setzero_ps();
    const float* x = xs + p * dim;
    for (size_t t = 0; t < dim; ++t) {
      __m512 c = _mm512_loadu_ps(ct + t * 16);
      a[0] = _mm512_fmadd_ps(_mm512_set1_ps(x[t]), c, a[0]);
      a[1] = _mm512_fmadd_ps(_mm512_set1_ps(x[dim + t]), c, a[1]);
      a[2] = _mm512_fmadd_ps(_mm512_set1_ps(x[2 * dim + t]), c, a[2]);
      a[3] = _mm512_fmadd_ps(_mm512_set1_ps(x[3 * dim + t]), c, a[3]);
      a[4] = _mm512_fmadd_ps(_mm512_set1_ps(x[4 * dim + t]), c, a[4]);
      a[5] = _mm512_fmadd_ps(_mm512_set1_ps(x[5 * dim + t]), c, a[5]);
      a[6] = _mm512_fmadd_ps(_mm512_set1_ps(x[6 * dim + t]), c, a[6]);
      a[7] = _mm512_fmadd_ps(_mm512_set1_ps(x[7 * dim + t]), c, a[7]);
    }
    for (int r = 0; r < 8; ++r) _mm512_storeu_ps(out + (p + r) * 16, a[r]);
  }
  for (; p < np; ++p) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    const float* x = xs + p * dim;
    size_t t = 0;
    for (; t + 2 <= dim; t += 2) {
      a0 = _mm512_fmadd_ps(_mm512_set1_ps(x[t]), _mm512_loadu_ps(ct + t * 16), a0);
      a1 = _mm512_fmadd_ps(_mm512_set1_ps(x[t + 1]), _mm512_loadu_ps(ct + t * 16 + 16), a1);
    }
    if (t < dim) a0 = _mm512_fmadd_ps(_mm512_set1_ps(x[t]), _mm512_loadu_ps(ct + t * 16), a0);
    _mm512_storeu_ps(out + p * 16, _mm512_add_ps(a0, a1));
  }
}

void dot_tile16_f16_avx512(const float* xs, size_t np, size_t dim, const uint16_t* ct, float* out) {
  size_t p = 0;
  for (; p + 4 <= np; p += 4) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    const float* x = xs + p * dim;
    for (size_t t = 0; t < dim; ++t) {
      __m512 c = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ct + t * 16)));
      a0 = _mm512_fmadd_ps(_mm512_set1_ps(x[t]), c, a0);
      a1 = _mm512_fmadd_ps(_mm512_set1_ps(x[dim + t]), c, a1);
      a2 = _mm512_fmadd_ps(_mm512_set1_ps(x[2 * dim + t]), c, a2);
      a3 = _mm512_fmadd_ps(_mm512_set1_ps(x[3 * dim + t]), c, a3);
    }
    _mm512_storeu_ps(out + p * 16, a0);
    _mm512_storeu_ps(out + (p + 1) * 16, a1);
    _mm512_storeu_ps(out + (p + 2) * 16, a2);
    _mm512_storeu_ps(out + (p + 3) * 16, a3);
  }
  for (; p < np; ++p) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    const float* x = xs + p * dim;
    size_t t = 0;
    for (; t + 2 <= dim; t += 2) {
      a0 = _mm512_fmadd_ps(_mm512_set1_ps(x[t]),
                           _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ct + t * 16))), a0);
      a1 = _mm512_fmadd_ps(_mm512_set1_ps(x[t + 1]),
                           _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ct + t * 16 + 16))), a1);
    }
    if (t < dim)
      a0 = _mm512_fmadd_ps(_mm512_set1_ps(x[t]),
                           _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ct + t * 16))), a0);
    _mm512_storeu_ps(out + p * 16, _mm512_add_ps(a0, a1));
  }
}

void estimate_avx512(const float* factors, const uint16_t* ip, size_t n, const EstimateParams& p, float* est,
                     float* lower) {
  kernels_detail::estimate_loop(factors, ip, n, p, est, lower);
}

}  // namespace

const Kernels* avx512_kernels() {
  // Popcount entries are completed by dispatch.cc (VPOPCNTDQ or AVX2).
  static Kernels k = {SimdLevel::kAvx512,    "avx512",       l2sq_avx512, dot_avx512,      minmax_avx512,
                      quantize_avx512,       nullptr,        nullptr,     fastscan_avx512, dot_tile16_avx512,
                      dot_tile16_f16_avx512, estimate_avx512};
  return &k;
}

// Installed by dispatch.cc when the CPU has VPOPCNTDQ.
void avx512_vpopcnt_kernels(uint64_t (**popcount_and)(const uint64_t*, const uint64_t*, size_t),
                            uint64_t (**bitplane_ip)(const uint64_t*, size_t, const uint64_t*, size_t)) {
  *popcount_and = popcount_and_vpopcnt;
  *bitplane_ip = bitplane_ip_vpopcnt;
}

}  // namespace rabitq

#else
namespace rabitq {
const Kernels* avx512_kernels() { return nullptr; }
void avx512_vpopcnt_kernels(uint64_t (**)(const uint64_t*, const uint64_t*, size_t),
                            uint64_t (**)(const uint64_t*, size_t, const uint64_t*, size_t)) {}
}  // namespace rabitq
#endif
