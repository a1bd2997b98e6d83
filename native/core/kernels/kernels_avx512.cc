// AVX-512 (F/BW/VL) kernels, with VPOPCNTDQ popcount kernels compiled behind a
// per-function target attribute: dispatch.cc only installs those when CPUID
// reports VPOPCNTDQ, and otherwise keeps the AVX2 popcount kernels.
#include "estimate_loop.h"
#include "ex_query_loop.h"
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
// Two pairs (16 coordinates, 64 LUT bytes) per step: the 16 values in every
// 128-bit lane, lane L taking byte 4L + b for bit b (see fastscan_luts_avx2).
void fastscan_luts_avx512(const uint8_t* qu, size_t npairs, uint8_t* luts) {
  // Lane L (bytes 16L..16L+15) reads byte 4L + b; entry v keeps it when bit
  // b of v is set: masks 0xAAAA.., 0xCCCC.., 0xF0F0.., 0xFF00.. per 16 bytes.
  const __m512i lane =
      _mm512_set_epi32(0x0c0c0c0c, 0x0c0c0c0c, 0x0c0c0c0c, 0x0c0c0c0c, 0x08080808, 0x08080808, 0x08080808, 0x08080808,
                       0x04040404, 0x04040404, 0x04040404, 0x04040404, 0, 0, 0, 0);
  const __m512i sel[4] = {lane, _mm512_add_epi8(lane, _mm512_set1_epi8(1)), _mm512_add_epi8(lane, _mm512_set1_epi8(2)),
                          _mm512_add_epi8(lane, _mm512_set1_epi8(3))};
  const __mmask64 bit[4] = {0xAAAAAAAAAAAAAAAAULL, 0xCCCCCCCCCCCCCCCCULL, 0xF0F0F0F0F0F0F0F0ULL, 0xFF00FF00FF00FF00ULL};
  for (size_t p = 0; p + 2 <= npairs; p += 2) {
    const __m512i q = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qu + 8 * p)));
    __m512i s0 = _mm512_maskz_shuffle_epi8(bit[0], q, sel[0]);
    __m512i s1 = _mm512_maskz_shuffle_epi8(bit[1], q, sel[1]);
    s0 = _mm512_add_epi8(s0, _mm512_maskz_shuffle_epi8(bit[2], q, sel[2]));
    s1 = _mm512_add_epi8(s1, _mm512_maskz_shuffle_epi8(bit[3], q, sel[3]));
    _mm512_storeu_si512(luts + 32 * p, _mm512_add_epi8(s0, s1));
  }
  if (npairs % 2) {  // the last pair: lanes 0 and 1 of an 8-byte load
    const size_t p = npairs - 1;
    const __m512i q = _mm512_broadcast_i32x4(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(qu + 8 * p)));
    __m512i s0 = _mm512_maskz_shuffle_epi8(bit[0], q, sel[0]);
    __m512i s1 = _mm512_maskz_shuffle_epi8(bit[1], q, sel[1]);
    s0 = _mm512_add_epi8(s0, _mm512_maskz_shuffle_epi8(bit[2], q, sel[2]));
    s1 = _mm512_add_epi8(s1, _mm512_maskz_shuffle_epi8(bit[3], q, sel[3]));
    _mm512_mask_storeu_epi8(luts + 32 * p, 0xffffffffULL, _mm512_add_epi8(s0, s1));
  }
}

[[gnu::always_inline]] inline void fastscan_avx512(const uint8_t* codes, const uint8_t* luts, size_t npairs,
                                                   uint16_t* out) {
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

// Q queries x 16 half-float columns. Every dot product is summed in four
// partial sums (t = 0, 4, 8.. / 1, 5, .. / 2, .. / 3, ..) added as
// (s0 + s1) + (s2 + s3), so its value does not depend on how many queries
// share the call: a query alone (search) and in a block (searchBatch) rank
// the centroids identically. Four chains also hide the FMA latency.
template <int Q>
inline void tile16_f16_q(const float* x, size_t dim, const uint16_t* ct, float* out) {
  __m512 s[Q][4];
  for (int q = 0; q < Q; ++q)
    for (int u = 0; u < 4; ++u) s[q][u] = _mm512_setzero_ps();
  size_t t = 0;
  for (; t + 4 <= dim; t += 4) {
    for (int u = 0; u < 4; ++u) {
      const __m512 c = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ct + (t + u) * 16)));
      for (int q = 0; q < Q; ++q) s[q][u] = _mm512_fmadd_ps(_mm512_set1_ps(x[q * dim + t + u]), c, s[q][u]);
    }
  }
  // The last dim % 4 coordinates, coordinate t + u on chain u as above; u a
  // constant, so the accumulators stay in registers.
  for (int u = 0; u < 3; ++u) {
    if (t + static_cast<size_t>(u) >= dim) break;
    const __m512 c = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ct + (t + u) * 16)));
    for (int q = 0; q < Q; ++q) s[q][u] = _mm512_fmadd_ps(_mm512_set1_ps(x[q * dim + t + u]), c, s[q][u]);
  }
  for (int q = 0; q < Q; ++q)
    _mm512_storeu_ps(out + q * 16, _mm512_add_ps(_mm512_add_ps(s[q][0], s[q][1]), _mm512_add_ps(s[q][2], s[q][3])));
}

void dot_tile16_f16_avx512(const float* xs, size_t np, size_t dim, const uint16_t* ct, float* out) {
  size_t p = 0;
  // Six points share each converted tile row where they can: 24 of the 32
  // registers accumulate, and a conversion (two uops) serves six FMAs.
  for (; p + 6 <= np; p += 6) tile16_f16_q<6>(xs + p * dim, dim, ct, out + p * 16);
  for (; p + 4 <= np; p += 4) tile16_f16_q<4>(xs + p * dim, dim, ct, out + p * 16);
  for (; p < np; ++p) tile16_f16_q<1>(xs + p * dim, dim, ct, out + p * 16);
}

[[gnu::always_inline]] inline uint32_t estimate_avx512(const float* factors, const uint16_t* ip, size_t n,
                                                       const EstimateParams& p, float threshold, float* est,
                                                       float* lower) {
  kernels_detail::estimate_loop(factors, ip, n, p, est, lower);
  // _CMP_LE_OQ: false for NaN, as lower <= threshold is.
  const __m512 t = _mm512_set1_ps(threshold);
  const __mmask16 lo_valid = static_cast<__mmask16>(n >= 16 ? 0xffffu : (1u << n) - 1);
  const __mmask16 hi_valid = static_cast<__mmask16>(n >= 32 ? 0xffffu : n > 16 ? (1u << (n - 16)) - 1 : 0);
  const __mmask16 lo = _mm512_mask_cmp_ps_mask(lo_valid, _mm512_maskz_loadu_ps(lo_valid, lower), t, _CMP_LE_OQ);
  const __mmask16 hi = _mm512_mask_cmp_ps_mask(hi_valid, _mm512_maskz_loadu_ps(hi_valid, lower + 16), t, _CMP_LE_OQ);
  return static_cast<uint32_t>(lo) | static_cast<uint32_t>(hi) << 16;
}

// ---- multi-bit ex codes (layout: ex_layout.h) --------------------------------

inline uint64_t load_u64(const uint8_t* p) {
  uint64_t w;
  __builtin_memcpy(&w, p, 8);
  return w;
}

// ex values of the 64 dimensions of group g, one byte each.
template <unsigned EX>
inline __m512i decode_ex_avx512(const uint8_t* ex, size_t pd, size_t g) {
  if (EX == 8) return _mm512_loadu_si512(ex + 64 * g);
  __m512i z = _mm512_setzero_si512();
  size_t off = 0;
  if (EX & 4u) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ex + off + 32 * g));
    const __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    z = _mm512_slli_epi16(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), EX & 3u);
    off += pd / 2;
  }
  if (EX & 2u) {
    const __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ex + off + 16 * g)));
    const __m512i sh = _mm512_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2, 4, 4, 4, 4, 6, 6, 6, 6);
    const __m512i c = _mm512_and_si512(_mm512_srlv_epi32(v, sh), _mm512_set1_epi8(0x03));
    z = _mm512_or_si512(z, _mm512_slli_epi16(c, EX & 1u));
    off += pd / 4;
  }
  if (EX & 1u) z = _mm512_or_si512(z, _mm512_maskz_mov_epi8(load_u64(ex + off + 8 * g), _mm512_set1_epi8(1)));
  return z;
}

inline int64_t reduce_epi32_wide(__m512i acc) {
  const __m512i wide = _mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(acc)),
                                        _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(acc, 1)));
  return static_cast<int64_t>(_mm512_reduce_add_epi64(wide));
}

// AVX-512BW: maddubs pairs must stay below 2^15, so values above 127 are split.
template <unsigned EX>
int64_t ex_ip_avx512_t(const int8_t* q, const uint8_t* sign, const uint8_t* ex, size_t pd) {
  const __m512i one = _mm512_set1_epi16(1), one8 = _mm512_set1_epi8(1);
  __m512i acc = _mm512_setzero_si512();
  for (size_t g = 0; g < pd / 64; ++g) {
    const __m512i e = decode_ex_avx512<EX>(ex, pd, g);
    const __mmask64 sm = load_u64(sign + 8 * g);
    const __m512i qv = _mm512_loadu_si512(q + 64 * g);
    if (EX <= 6) {
      const __m512i u = _mm512_mask_add_epi8(e, sm, e, _mm512_set1_epi8(static_cast<char>(1u << EX)));
      acc = _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u, qv), one));
      continue;
    }
    const __m512i s01 = _mm512_maskz_mov_epi8(sm, one8);
    acc = _mm512_add_epi32(
        acc, _mm512_madd_epi16(_mm512_maddubs_epi16(s01, qv), _mm512_set1_epi16(static_cast<short>(1u << EX))));
    if (EX == 7) {
      acc = _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(e, qv), one));
    } else {
      const __m512i low7 = _mm512_and_si512(e, _mm512_set1_epi8(0x7f));
      const __m512i top = _mm512_and_si512(_mm512_srli_epi16(e, 7), one8);
      acc = _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(low7, qv), one));
      acc = _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(top, qv), _mm512_set1_epi16(128)));
    }
  }
  return reduce_epi32_wide(acc);
}

int64_t ex_ip_avx512(const int8_t* q, const uint8_t* sign, const uint8_t* ex, size_t pd, unsigned ex_bits) {
  switch (ex_bits) {
    case 1:
      return ex_ip_avx512_t<1>(q, sign, ex, pd);
    case 2:
      return ex_ip_avx512_t<2>(q, sign, ex, pd);
    case 3:
      return ex_ip_avx512_t<3>(q, sign, ex, pd);
    case 4:
      return ex_ip_avx512_t<4>(q, sign, ex, pd);
    case 5:
      return ex_ip_avx512_t<5>(q, sign, ex, pd);
    case 6:
      return ex_ip_avx512_t<6>(q, sign, ex, pd);
    case 7:
      return ex_ip_avx512_t<7>(q, sign, ex, pd);
    default:
      return ex_ip_avx512_t<8>(q, sign, ex, pd);
  }
}

// AVX-512 VNNI: vpdpbusd sums four u8 x s8 products into int32 without
// saturation, so codes up to 255 go in whole; only ex_bits = 8 (codes up to
// 511) keeps the sign in a second accumulator.
template <unsigned EX>
__attribute__((target("avx512vnni"))) int64_t ex_ip_vnni_t(const int8_t* q, const uint8_t* sign, const uint8_t* ex,
                                                           size_t pd) {
  __m512i acc = _mm512_setzero_si512(), acc_s = _mm512_setzero_si512();
  for (size_t g = 0; g < pd / 64; ++g) {
    const __m512i e = decode_ex_avx512<EX>(ex, pd, g);
    const __mmask64 sm = load_u64(sign + 8 * g);
    const __m512i qv = _mm512_loadu_si512(q + 64 * g);
    if (EX <= 7) {
      const __m512i u = _mm512_mask_add_epi8(e, sm, e, _mm512_set1_epi8(static_cast<char>(1u << EX)));
      acc = _mm512_dpbusd_epi32(acc, u, qv);
    } else {
      acc = _mm512_dpbusd_epi32(acc, e, qv);
      acc_s = _mm512_dpbusd_epi32(acc_s, _mm512_maskz_mov_epi8(sm, _mm512_set1_epi8(1)), qv);
    }
  }
  int64_t r = reduce_epi32_wide(acc);
  if (EX > 7) r += reduce_epi32_wide(acc_s) * (int64_t(1) << EX);
  return r;
}

__attribute__((target("avx512vnni"))) int64_t ex_ip_vnni(const int8_t* q, const uint8_t* sign, const uint8_t* ex,
                                                         size_t pd, unsigned ex_bits) {
  switch (ex_bits) {
    case 1:
      return ex_ip_vnni_t<1>(q, sign, ex, pd);
    case 2:
      return ex_ip_vnni_t<2>(q, sign, ex, pd);
    case 3:
      return ex_ip_vnni_t<3>(q, sign, ex, pd);
    case 4:
      return ex_ip_vnni_t<4>(q, sign, ex, pd);
    case 5:
      return ex_ip_vnni_t<5>(q, sign, ex, pd);
    case 6:
      return ex_ip_vnni_t<6>(q, sign, ex, pd);
    case 7:
      return ex_ip_vnni_t<7>(q, sign, ex, pd);
    default:
      return ex_ip_vnni_t<8>(q, sign, ex, pd);
  }
}

// Sixteen at a time, the passing positions compressed into one vector and
// stored whole (out has 16 entries of slack).
size_t indices_below_avx512(const float* x, size_t n, float t, uint32_t* out) {
  const __m512 tv = _mm512_set1_ps(t);
  const __m512i step = _mm512_set1_epi32(16);
  __m512i idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  size_t c = 0, i = 0;
  for (; i + 16 <= n; i += 16) {
    // _CMP_LE_OQ: false for NaN, as x <= t is.
    const __mmask16 m = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + i), tv, _CMP_LE_OQ);
    _mm512_storeu_si512(out + c, _mm512_maskz_compress_epi32(m, idx));
    c += static_cast<size_t>(__builtin_popcount(m));
    idx = _mm512_add_epi32(idx, step);
  }
  if (i < n) {
    const __mmask16 valid = static_cast<__mmask16>((1u << (n - i)) - 1);
    const __mmask16 m = _mm512_mask_cmp_ps_mask(valid, _mm512_maskz_loadu_ps(valid, x + i), tv, _CMP_LE_OQ);
    _mm512_storeu_si512(out + c, _mm512_maskz_compress_epi32(m, idx));
    c += static_cast<size_t>(__builtin_popcount(m));
  }
  return c;
}

int32_t ex_query_avx512(const float* qres, size_t padded_dim, int8_t* q, float* max_abs, double* norm2) {
  return kernels_detail::ex_query_loop(qres, padded_dim, q, max_abs, norm2);
}

}  // namespace

const Kernels* avx512_kernels() {
  // Popcount entries are completed by dispatch.cc (VPOPCNTDQ or AVX2).
  static Kernels k = {SimdLevel::kAvx512,
                      "avx512",
                      l2sq_avx512,
                      dot_avx512,
                      minmax_avx512,
                      quantize_avx512,
                      nullptr,
                      nullptr,
                      fastscan_avx512,
                      dot_tile16_avx512,
                      dot_tile16_f16_avx512,
                      estimate_avx512,
                      ex_ip_avx512,
                      fastscan_luts_avx512,
                      kernels_detail::scan_blocks_loop<fastscan_avx512, estimate_avx512>,
                      indices_below_avx512,
                      ex_query_avx512};
  return &k;
}

// Installed by dispatch.cc when the CPU has VPOPCNTDQ.
void avx512_vpopcnt_kernels(uint64_t (**popcount_and)(const uint64_t*, const uint64_t*, size_t),
                            uint64_t (**bitplane_ip)(const uint64_t*, size_t, const uint64_t*, size_t)) {
  *popcount_and = popcount_and_vpopcnt;
  *bitplane_ip = bitplane_ip_vpopcnt;
}

// The VNNI ex_ip, installed by dispatch.cc when the CPU has AVX-512 VNNI.
ExIpFn avx512_vnni_ex_ip() { return ex_ip_vnni; }

}  // namespace rabitq

#else
namespace rabitq {
const Kernels* avx512_kernels() { return nullptr; }
ExIpFn avx512_vnni_ex_ip() { return nullptr; }
void avx512_vpopcnt_kernels(uint64_t (**)(const uint64_t*, const uint64_t*, size_t),
                            uint64_t (**)(const uint64_t*, size_t, const uint64_t*, size_t)) {}
}  // namespace rabitq
#endif
