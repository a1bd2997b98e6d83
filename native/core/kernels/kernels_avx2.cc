// AVX2 + FMA + POPCNT kernels. Compiled with their own target flags (see
// binding.gyp / CMakeLists.txt); only called after CPUID says the CPU has them.
#include "estimate_loop.h"
#include "ex_query_loop.h"
#include "kernels.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>

namespace rabitq {
namespace {

inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// Mask for the first n (< 8) lanes, for the tails.
inline __m256i tail_mask(size_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), idx);
}

float l2sq_avx2(const float* a, const float* b, size_t d) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= d; i += 16) {
    __m256 t0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
    __m256 t1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
    s0 = _mm256_fmadd_ps(t0, t0, s0);
    s1 = _mm256_fmadd_ps(t1, t1, s1);
  }
  for (; i + 8 <= d; i += 8) {
    __m256 t = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
    s0 = _mm256_fmadd_ps(t, t, s0);
  }
  if (i < d) {
    __m256i m = tail_mask(d - i);
    __m256 t = _mm256_sub_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m));
    s1 = _mm256_fmadd_ps(t, t, s1);
  }
  return hsum256(_mm256_add_ps(s0, s1));
}

float dot_avx2(const float* a, const float* b, size_t d) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= d; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
  }
  for (; i + 8 <= d; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  if (i < d) {
    __m256i m = tail_mask(d - i);
    s1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), s1);
  }
  return hsum256(_mm256_add_ps(s0, s1));
}

void minmax_avx2(const float* x, size_t d, float* lo, float* hi) {
  __m256 mn = _mm256_set1_ps(x[0]), mx = mn;
  size_t i = 0;
  for (; i + 8 <= d; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    mn = _mm256_min_ps(mn, v);
    mx = _mm256_max_ps(mx, v);
  }
  alignas(32) float a[8], b[8];
  _mm256_store_ps(a, mn);
  _mm256_store_ps(b, mx);
  float l = a[0], h = b[0];
  for (int j = 1; j < 8; ++j) {
    if (a[j] < l) l = a[j];
    if (b[j] > h) h = b[j];
  }
  for (; i < d; ++i) {
    if (x[i] < l) l = x[i];
    if (x[i] > h) h = x[i];
  }
  *lo = l;
  *hi = h;
}

uint32_t quantize_avx2(const float* x, size_t d, float lo, float inv_delta, const float* offsets, uint32_t maxval,
                       uint8_t* out) {
  const __m256 vlo = _mm256_set1_ps(lo), vinv = _mm256_set1_ps(inv_delta);
  const __m256i vmax = _mm256_set1_epi32(static_cast<int>(maxval));
  const __m256i zero = _mm256_setzero_si256();
  __m256i sum = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 8 <= d; i += 8) {
    __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vlo), vinv);
    v = _mm256_add_ps(v, _mm256_loadu_ps(offsets + i));
    __m256i q = _mm256_cvttps_epi32(v);
    q = _mm256_min_epi32(_mm256_max_epi32(q, zero), vmax);
    sum = _mm256_add_epi32(sum, q);
    // Pack 8 x int32 (each <= 255) to 8 bytes.
    __m128i q16 = _mm_packus_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    __m128i q8 = _mm_packus_epi16(q16, q16);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + i), q8);
  }
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  uint32_t total = static_cast<uint32_t>(_mm_cvtsi128_si32(s));
  for (; i < d; ++i) {
    float v = (x[i] - lo) * inv_delta;
    v = v + offsets[i];
    uint32_t q = v > 0.f ? static_cast<uint32_t>(v) : 0u;
    if (q > maxval) q = maxval;
    out[i] = static_cast<uint8_t>(q);
    total += q;
  }
  return total;
}

uint64_t popcount_and_avx2(const uint64_t* a, const uint64_t* b, size_t words) {
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = 0;
  for (; i + 4 <= words; i += 4) {
    s0 += static_cast<uint64_t>(_mm_popcnt_u64(a[i] & b[i]));
    s1 += static_cast<uint64_t>(_mm_popcnt_u64(a[i + 1] & b[i + 1]));
    s2 += static_cast<uint64_t>(_mm_popcnt_u64(a[i + 2] & b[i + 2]));
    s3 += static_cast<uint64_t>(_mm_popcnt_u64(a[i + 3] & b[i + 3]));
  }
  for (; i < words; ++i) s0 += static_cast<uint64_t>(_mm_popcnt_u64(a[i] & b[i]));
  return s0 + s1 + s2 + s3;
}

uint64_t bitplane_ip_avx2(const uint64_t* planes, size_t bits, const uint64_t* code, size_t words) {
  uint64_t s = 0;
  for (size_t b = 0; b < bits; ++b) s += popcount_and_avx2(planes + b * words, code, words) << b;
  return s;
}

// 16-bit accumulation trick: the byte sums are added to two 16-bit
// accumulators, one taking the even bytes (mask) and one the odd bytes
// (shift), so no lane-crossing widening is needed in the loop.
// One pair (8 coordinates, 32 LUT bytes) per step: the 8 values in both
// 128-bit lanes, byte b (low lane) / 4 + b (high lane) broadcast by a
// shuffle, kept where bit b of the entry index is set, and the four summed.
void fastscan_luts_avx2(const uint8_t* qu, size_t npairs, uint8_t* luts) {
  const __m256i entry = _mm256_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7,
                                         8, 9, 10, 11, 12, 13, 14, 15);
  __m256i sel[4], bit[4];
  for (int b = 0; b < 4; ++b) {
    sel[b] = _mm256_setr_epi8(b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, 4 + b, 4 + b, 4 + b, 4 + b, 4 + b, 4 + b,
                              4 + b, 4 + b, 4 + b, 4 + b, 4 + b, 4 + b, 4 + b, 4 + b, 4 + b, 4 + b);
    const __m256i m = _mm256_set1_epi8(static_cast<char>(1 << b));
    bit[b] = _mm256_cmpeq_epi8(_mm256_and_si256(entry, m), m);
  }
  for (size_t p = 0; p < npairs; ++p) {
    long long v;
    __builtin_memcpy(&v, qu + 8 * p, 8);
    const __m256i q = _mm256_set1_epi64x(v);
    __m256i s0 = _mm256_and_si256(_mm256_shuffle_epi8(q, sel[0]), bit[0]);
    __m256i s1 = _mm256_and_si256(_mm256_shuffle_epi8(q, sel[1]), bit[1]);
    s0 = _mm256_add_epi8(s0, _mm256_and_si256(_mm256_shuffle_epi8(q, sel[2]), bit[2]));
    s1 = _mm256_add_epi8(s1, _mm256_and_si256(_mm256_shuffle_epi8(q, sel[3]), bit[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(luts + 32 * p), _mm256_add_epi8(s0, s1));
  }
}

[[gnu::always_inline]] inline void fastscan_avx2(const uint8_t* codes, const uint8_t* luts, size_t npairs,
                                                 uint16_t* out) {
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  const __m256i low8 = _mm256_set1_epi16(0x00ff);
  __m256i acc_even = _mm256_setzero_si256(), acc_odd = _mm256_setzero_si256();
  for (size_t p = 0; p < npairs; ++p) {
    __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + p * 32));
    __m256i lut_lo = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(luts + p * 32)));
    __m256i lut_hi = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(luts + p * 32 + 16)));
    __m256i r = _mm256_add_epi8(_mm256_shuffle_epi8(lut_lo, _mm256_and_si256(c, low4)),
                                _mm256_shuffle_epi8(lut_hi, _mm256_and_si256(_mm256_srli_epi16(c, 4), low4)));
    acc_even = _mm256_add_epi16(acc_even, _mm256_and_si256(r, low8));
    acc_odd = _mm256_add_epi16(acc_odd, _mm256_srli_epi16(r, 8));
  }
  alignas(32) uint16_t e[16], o[16];
  _mm256_store_si256(reinterpret_cast<__m256i*>(e), acc_even);
  _mm256_store_si256(reinterpret_cast<__m256i*>(o), acc_odd);
  for (int w = 0; w < 16; ++w) {
    out[2 * w] = e[w];
    out[2 * w + 1] = o[w];
  }
}

void dot_tile16_avx2(const float* xs, size_t np, size_t dim, const float* ct, float* out) {
  size_t p = 0;
  for (; p + 4 <= np; p += 4) {
    __m256 a0 = _mm256_setzero_ps(), b0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps(),
           a2 = _mm256_setzero_ps(), b2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps(), b3 = _mm256_setzero_ps();
    const float* x0 = xs + p * dim;
    const float* x1 = x0 + dim;
    const float* x2 = x1 + dim;
    const float* x3 = x2 + dim;
    for (size_t t = 0; t < dim; ++t) {
      __m256 c0 = _mm256_loadu_ps(ct + t * 16), c1 = _mm256_loadu_ps(ct + t * 16 + 8);
      __m256 v = _mm256_broadcast_ss(x0 + t);
      a0 = _mm256_fmadd_ps(v, c0, a0);
      b0 = _mm256_fmadd_ps(v, c1, b0);
      v = _mm256_broadcast_ss(x1 + t);
      a1 = _mm256_fmadd_ps(v, c0, a1);
      b1 = _mm256_fmadd_ps(v, c1, b1);
      v = _mm256_broadcast_ss(x2 + t);
      a2 = _mm256_fmadd_ps(v, c0, a2);
      b2 = _mm256_fmadd_ps(v, c1, b2);
      v = _mm256_broadcast_ss(x3 + t);
      a3 = _mm256_fmadd_ps(v, c0, a3);
      b3 = _mm256_fmadd_ps(v, c1, b3);
    }
    float* o = out + p * 16;
    _mm256_storeu_ps(o, a0);
    _mm256_storeu_ps(o + 8, b0);
    _mm256_storeu_ps(o + 16, a1);
    _mm256_storeu_ps(o + 24, b1);
    _mm256_storeu_ps(o + 32, a2);
    _mm256_storeu_ps(o + 40, b2);
    _mm256_storeu_ps(o + 48, a3);
    _mm256_storeu_ps(o + 56, b3);
  }
  for (; p < np; ++p) {
    __m256 a0 = _mm256_setzero_ps(), b0 = _mm256_setzero_ps();
    const float* x0 = xs + p * dim;
    for (size_t t = 0; t < dim; ++t) {
      __m256 v = _mm256_broadcast_ss(x0 + t);
      a0 = _mm256_fmadd_ps(v, _mm256_loadu_ps(ct + t * 16), a0);
      b0 = _mm256_fmadd_ps(v, _mm256_loadu_ps(ct + t * 16 + 8), b0);
    }
    _mm256_storeu_ps(out + p * 16, a0);
    _mm256_storeu_ps(out + p * 16 + 8, b0);
  }
}

// F16C ships with every AVX2 CPU (Intel since Ivy Bridge, AMD since Piledriver).
// Q queries x 16 half-float columns (two halves of 8). Every dot product is
// summed in two partial sums (even / odd t) added at the end, whatever Q, so
// a query alone (search) and in a block (searchBatch) get the same values.
template <int Q>
inline void tile16_f16_q(const float* x, size_t dim, const uint16_t* ct, float* out) {
  __m256 s[Q][2][2];
  for (int q = 0; q < Q; ++q)
    for (int u = 0; u < 2; ++u) s[q][u][0] = s[q][u][1] = _mm256_setzero_ps();
  size_t t = 0;
  for (; t + 2 <= dim; t += 2) {
    for (int u = 0; u < 2; ++u) {
      const __m256 c0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ct + (t + u) * 16)));
      const __m256 c1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ct + (t + u) * 16 + 8)));
      for (int q = 0; q < Q; ++q) {
        const __m256 v = _mm256_broadcast_ss(x + q * dim + t + u);
        s[q][u][0] = _mm256_fmadd_ps(v, c0, s[q][u][0]);
        s[q][u][1] = _mm256_fmadd_ps(v, c1, s[q][u][1]);
      }
    }
  }
  if (t < dim) {
    const __m256 c0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ct + t * 16)));
    const __m256 c1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ct + t * 16 + 8)));
    for (int q = 0; q < Q; ++q) {
      const __m256 v = _mm256_broadcast_ss(x + q * dim + t);
      s[q][0][0] = _mm256_fmadd_ps(v, c0, s[q][0][0]);
      s[q][0][1] = _mm256_fmadd_ps(v, c1, s[q][0][1]);
    }
  }
  for (int q = 0; q < Q; ++q) {
    _mm256_storeu_ps(out + q * 16, _mm256_add_ps(s[q][0][0], s[q][1][0]));
    _mm256_storeu_ps(out + q * 16 + 8, _mm256_add_ps(s[q][0][1], s[q][1][1]));
  }
}

void dot_tile16_f16_avx2(const float* xs, size_t np, size_t dim, const uint16_t* ct, float* out) {
  size_t p = 0;
  for (; p + 2 <= np; p += 2) tile16_f16_q<2>(xs + p * dim, dim, ct, out + p * 16);
  for (; p < np; ++p) tile16_f16_q<1>(xs + p * dim, dim, ct, out + p * 16);
}

[[gnu::always_inline]] inline uint32_t estimate_avx2(const float* factors, const uint16_t* ip, size_t n,
                                                     const EstimateParams& p, float threshold, float* est,
                                                     float* lower) {
  kernels_detail::estimate_loop(factors, ip, n, p, est, lower);
  if (n < kFastScanBlock) return kernels_detail::below_mask_loop(lower, n, threshold);
  // _CMP_LE_OQ: false for NaN, as lower <= threshold is.
  const __m256 t = _mm256_set1_ps(threshold);
  uint32_t mask = 0;
  for (size_t j = 0; j < kFastScanBlock; j += 8)
    mask |= static_cast<uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(lower + j), t, _CMP_LE_OQ))) << j;
  return mask;
}

// ---- multi-bit ex codes (layout: ex_layout.h) --------------------------------

// 32 bits -> 32 bytes of 0 or 1 (byte j = bit j).
inline __m256i bits_to_bytes(uint32_t w) {
  const __m256i rep =
      _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i sel = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ULL));
  __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(w)), rep);
  v = _mm256_cmpeq_epi8(_mm256_and_si256(v, sel), sel);
  return _mm256_and_si256(v, _mm256_set1_epi8(1));
}

inline uint64_t load_u64(const uint8_t* p) {
  uint64_t w;
  __builtin_memcpy(&w, p, 8);
  return w;
}

// ex values of the 64 dimensions of group g: dimensions 0..31 in *lo, 32..63 in *hi.
template <unsigned EX>
inline void decode_ex_avx2(const uint8_t* ex, size_t pd, size_t g, __m256i* lo, __m256i* hi) {
  const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(0x03);
  if (EX == 8) {
    *lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ex + 64 * g));
    *hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ex + 64 * g + 32));
    return;
  }
  __m256i a = _mm256_setzero_si256(), b = _mm256_setzero_si256();
  size_t off = 0;
  if (EX & 4u) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ex + off + 32 * g));
    a = _mm256_slli_epi16(_mm256_and_si256(v, m4), EX & 3u);
    b = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4), EX & 3u);
    off += pd / 2;
  }
  if (EX & 2u) {
    const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ex + off + 16 * g)));
    const __m256i c0 = _mm256_and_si256(_mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2)), m2);
    const __m256i c1 = _mm256_and_si256(_mm256_srlv_epi32(v, _mm256_setr_epi32(4, 4, 4, 4, 6, 6, 6, 6)), m2);
    a = _mm256_or_si256(a, _mm256_slli_epi16(c0, EX & 1u));
    b = _mm256_or_si256(b, _mm256_slli_epi16(c1, EX & 1u));
    off += pd / 4;
  }
  if (EX & 1u) {
    const uint64_t w = load_u64(ex + off + 8 * g);
    a = _mm256_or_si256(a, bits_to_bytes(static_cast<uint32_t>(w)));
    b = _mm256_or_si256(b, bits_to_bytes(static_cast<uint32_t>(w >> 32)));
  }
  *lo = a;
  *hi = b;
}

// 32 dimensions: code bytes u (ex plus the sign at weight 2^EX) against q.
// maddubs pairs must stay below 2^15, so values above 127 are split.
template <unsigned EX>
inline __m256i ex_dot32_avx2(__m256i ex, __m256i s01, __m256i q) {
  const __m256i one = _mm256_set1_epi16(1);
  if (EX <= 6) {
    const __m256i u = _mm256_or_si256(ex, _mm256_slli_epi16(s01, EX));
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, q), one);
  }
  const __m256i ws = _mm256_set1_epi16(static_cast<short>(1u << EX));
  __m256i r = _mm256_madd_epi16(_mm256_maddubs_epi16(s01, q), ws);
  if (EX == 7) return _mm256_add_epi32(r, _mm256_madd_epi16(_mm256_maddubs_epi16(ex, q), one));
  const __m256i low7 = _mm256_and_si256(ex, _mm256_set1_epi8(0x7f));
  const __m256i top = _mm256_and_si256(_mm256_srli_epi16(ex, 7), _mm256_set1_epi8(1));
  r = _mm256_add_epi32(r, _mm256_madd_epi16(_mm256_maddubs_epi16(low7, q), one));
  return _mm256_add_epi32(r, _mm256_madd_epi16(_mm256_maddubs_epi16(top, q), _mm256_set1_epi16(128)));
}

template <unsigned EX>
int64_t ex_ip_avx2_t(const int8_t* q, const uint8_t* sign, const uint8_t* ex, size_t pd) {
  __m256i acc = _mm256_setzero_si256();
  for (size_t g = 0; g < pd / 64; ++g) {
    __m256i lo, hi;
    decode_ex_avx2<EX>(ex, pd, g, &lo, &hi);
    const uint64_t sw = load_u64(sign + 8 * g);
    const __m256i q0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 64 * g));
    const __m256i q1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 64 * g + 32));
    acc = _mm256_add_epi32(acc, ex_dot32_avx2<EX>(lo, bits_to_bytes(static_cast<uint32_t>(sw)), q0));
    acc = _mm256_add_epi32(acc, ex_dot32_avx2<EX>(hi, bits_to_bytes(static_cast<uint32_t>(sw >> 32)), q1));
  }
  // Lanes stay within int32 (at most 2^16 dimensions); widen before the sum.
  const __m256i wide = _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(acc)),
                                        _mm256_cvtepi32_epi64(_mm256_extracti128_si256(acc, 1)));
  const __m128i s = _mm_add_epi64(_mm256_castsi256_si128(wide), _mm256_extracti128_si256(wide, 1));
  return _mm_cvtsi128_si64(s) + _mm_extract_epi64(s, 1);
}

int64_t ex_ip_avx2(const int8_t* q, const uint8_t* sign, const uint8_t* ex, size_t pd, unsigned ex_bits) {
  switch (ex_bits) {
    case 1:
      return ex_ip_avx2_t<1>(q, sign, ex, pd);
    case 2:
      return ex_ip_avx2_t<2>(q, sign, ex, pd);
    case 3:
      return ex_ip_avx2_t<3>(q, sign, ex, pd);
    case 4:
      return ex_ip_avx2_t<4>(q, sign, ex, pd);
    case 5:
      return ex_ip_avx2_t<5>(q, sign, ex, pd);
    case 6:
      return ex_ip_avx2_t<6>(q, sign, ex, pd);
    case 7:
      return ex_ip_avx2_t<7>(q, sign, ex, pd);
    default:
      return ex_ip_avx2_t<8>(q, sign, ex, pd);
  }
}

// Eight at a time: a compare and a movemask, then the few set bits.
size_t indices_below_avx2(const float* x, size_t n, float t, uint32_t* out) {
  const __m256 tv = _mm256_set1_ps(t);
  size_t c = 0, i = 0;
  for (; i + 8 <= n; i += 8) {
    // _CMP_LE_OQ: false for NaN, as x <= t is.
    uint32_t m = static_cast<uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), tv, _CMP_LE_OQ)));
    for (; m != 0; m &= m - 1) out[c++] = static_cast<uint32_t>(i + static_cast<size_t>(__builtin_ctz(m)));
  }
  for (; i < n; ++i)
    if (x[i] <= t) out[c++] = static_cast<uint32_t>(i);
  return c;
}

int32_t ex_query_avx2(const float* qres, size_t padded_dim, int8_t* q, float* max_abs, double* norm2) {
  return kernels_detail::ex_query_loop(qres, padded_dim, q, max_abs, norm2);
}

}  // namespace

const Kernels* avx2_kernels() {
  static const Kernels k = {SimdLevel::kAvx2,
                            "avx2",
                            l2sq_avx2,
                            dot_avx2,
                            minmax_avx2,
                            quantize_avx2,
                            popcount_and_avx2,
                            bitplane_ip_avx2,
                            fastscan_avx2,
                            dot_tile16_avx2,
                            dot_tile16_f16_avx2,
                            estimate_avx2,
                            ex_ip_avx2,
                            fastscan_luts_avx2,
                            kernels_detail::scan_blocks_loop<fastscan_avx2, estimate_avx2>,
                            indices_below_avx2,
                            ex_query_avx2};
  return &k;
}

}  // namespace rabitq

#else
namespace rabitq {
const Kernels* avx2_kernels() { return nullptr; }
}  // namespace rabitq
#endif
