// AArch64 Advanced SIMD (NEON) kernels. NEON is part of the AArch64 base
// architecture, so this file needs no extra target flags; the one optional
// extension used (dotprod, for the popcount sums and ex_ip) sits behind
// per-function target attributes and dispatch.cc installs those functions
// only when the kernel reports it through getauxval(AT_HWCAP).
#include "estimate_loop.h"
#include "ex_query_loop.h"
#include "kernels.h"
#include "kernels_neon_ex.h"

#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>

namespace rabitq {
namespace {

float l2sq_neon(const float* a, const float* b, size_t d) {
  float32x4_t s0 = vdupq_n_f32(0.f), s1 = s0, s2 = s0, s3 = s0;
  size_t i = 0;
  for (; i + 16 <= d; i += 16) {
    const float32x4_t t0 = vsubq_f32(vld1q_f32(a + i), vld1q_f32(b + i));
    const float32x4_t t1 = vsubq_f32(vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
    const float32x4_t t2 = vsubq_f32(vld1q_f32(a + i + 8), vld1q_f32(b + i + 8));
    const float32x4_t t3 = vsubq_f32(vld1q_f32(a + i + 12), vld1q_f32(b + i + 12));
    s0 = vfmaq_f32(s0, t0, t0);
    s1 = vfmaq_f32(s1, t1, t1);
    s2 = vfmaq_f32(s2, t2, t2);
    s3 = vfmaq_f32(s3, t3, t3);
  }
  for (; i + 4 <= d; i += 4) {
    const float32x4_t t = vsubq_f32(vld1q_f32(a + i), vld1q_f32(b + i));
    s0 = vfmaq_f32(s0, t, t);
  }
  float tail = 0.f;
  for (; i < d; ++i) {
    const float t = a[i] - b[i];
    tail += t * t;
  }
  return vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3))) + tail;
}

float dot_neon(const float* a, const float* b, size_t d) {
  float32x4_t s0 = vdupq_n_f32(0.f), s1 = s0, s2 = s0, s3 = s0;
  size_t i = 0;
  for (; i + 16 <= d; i += 16) {
    s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
    s1 = vfmaq_f32(s1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
    s2 = vfmaq_f32(s2, vld1q_f32(a + i + 8), vld1q_f32(b + i + 8));
    s3 = vfmaq_f32(s3, vld1q_f32(a + i + 12), vld1q_f32(b + i + 12));
  }
  for (; i + 4 <= d; i += 4) s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
  float tail = 0.f;
  for (; i < d; ++i) tail += a[i] * b[i];
  return vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3))) + tail;
}

void minmax_neon(const float* x, size_t d, float* lo, float* hi) {
  float32x4_t mn = vdupq_n_f32(x[0]), mx = mn;
  size_t i = 0;
  for (; i + 4 <= d; i += 4) {
    const float32x4_t v = vld1q_f32(x + i);
    mn = vminq_f32(mn, v);
    mx = vmaxq_f32(mx, v);
  }
  float l = vminvq_f32(mn), h = vmaxvq_f32(mx);
  for (; i < d; ++i) {
    if (x[i] < l) l = x[i];
    if (x[i] > h) h = x[i];
  }
  *lo = l;
  *hi = h;
}

// Same operations in the same order as the scalar reference (the build turns
// FP contraction off), so the codes and the sum are identical. FCVTZU
// truncates toward zero and saturates negatives (and NaN) to 0, which is the
// scalar `v > 0 ? (uint32_t)v : 0`.
uint32_t quantize_neon(const float* x, size_t d, float lo, float inv_delta, const float* offsets, uint32_t maxval,
                       uint8_t* out) {
  const float32x4_t vlo = vdupq_n_f32(lo), vinv = vdupq_n_f32(inv_delta);
  const uint32x4_t vmax = vdupq_n_u32(maxval);
  uint32x4_t sum = vdupq_n_u32(0);
  size_t i = 0;
  for (; i + 8 <= d; i += 8) {
    float32x4_t v0 = vmulq_f32(vsubq_f32(vld1q_f32(x + i), vlo), vinv);
    float32x4_t v1 = vmulq_f32(vsubq_f32(vld1q_f32(x + i + 4), vlo), vinv);
    v0 = vaddq_f32(v0, vld1q_f32(offsets + i));
    v1 = vaddq_f32(v1, vld1q_f32(offsets + i + 4));
    const uint32x4_t q0 = vminq_u32(vcvtq_u32_f32(v0), vmax);
    const uint32x4_t q1 = vminq_u32(vcvtq_u32_f32(v1), vmax);
    sum = vaddq_u32(sum, vaddq_u32(q0, q1));
    const uint16x8_t q16 = vcombine_u16(vmovn_u32(q0), vmovn_u32(q1));
    vst1_u8(out + i, vmovn_u16(q16));
  }
  uint32_t total = vaddvq_u32(sum);
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

// Byte popcounts (CNT) of 4 vectors = 8 words per step, each byte <= 32;
// pairwise-widened into 16-bit lanes (<= 64 per step), which are flushed to
// 64-bit totals every 512 steps, before they could overflow.
uint64_t popcount_and_neon(const uint64_t* a, const uint64_t* b, size_t words) {
  const uint8_t* pa = reinterpret_cast<const uint8_t*>(a);
  const uint8_t* pb = reinterpret_cast<const uint8_t*>(b);
  uint64x2_t total = vdupq_n_u64(0);
  size_t i = 0;
  while (i + 8 <= words) {
    uint16x8_t acc = vdupq_n_u16(0);
    const size_t end = words - i > 8 * 512 ? i + 8 * 512 : words;
    for (; i + 8 <= end; i += 8) {
      const uint8_t* x = pa + 8 * i;
      const uint8_t* y = pb + 8 * i;
      uint8x16_t c = vcntq_u8(vandq_u8(vld1q_u8(x), vld1q_u8(y)));
      c = vaddq_u8(c, vcntq_u8(vandq_u8(vld1q_u8(x + 16), vld1q_u8(y + 16))));
      c = vaddq_u8(c, vcntq_u8(vandq_u8(vld1q_u8(x + 32), vld1q_u8(y + 32))));
      c = vaddq_u8(c, vcntq_u8(vandq_u8(vld1q_u8(x + 48), vld1q_u8(y + 48))));
      acc = vpadalq_u8(acc, c);
    }
    total = vpadalq_u32(total, vpaddlq_u16(acc));
  }
  uint64_t s = vaddvq_u64(total);
  for (; i + 2 <= words; i += 2) {
    const uint8x16_t c = vcntq_u8(vandq_u8(vld1q_u8(pa + 8 * i), vld1q_u8(pb + 8 * i)));
    s += vaddlvq_u8(c);
  }
  if (i < words) s += static_cast<uint64_t>(__builtin_popcountll(a[i] & b[i]));
  return s;
}

uint64_t bitplane_ip_neon(const uint64_t* planes, size_t bits, const uint64_t* code, size_t words) {
  uint64_t s = 0;
  for (size_t b = 0; b < bits; ++b) s += popcount_and_neon(planes + b * words, code, words) << b;
  return s;
}

// TBL does the 16-entry lookups: the low nibbles index the first 16 LUT
// bytes, the high nibbles the next 16. Vectors 0..15 of the block are in the
// first 16 code bytes of a pair and 16..31 in the next, so widening adds
// (UADDW / UADDW2) keep the 32 sums in output order with no shuffles.
[[gnu::always_inline]] inline void fastscan_neon(const uint8_t* codes, const uint8_t* luts, size_t npairs,
                                                 uint16_t* out) {
  const uint8x16_t low4 = vdupq_n_u8(0x0f);
  uint16x8_t acc0 = vdupq_n_u16(0), acc1 = acc0, acc2 = acc0, acc3 = acc0;
  for (size_t p = 0; p < npairs; ++p) {
    const uint8x16_t lut_lo = vld1q_u8(luts + p * 32), lut_hi = vld1q_u8(luts + p * 32 + 16);
    const uint8x16_t c0 = vld1q_u8(codes + p * 32), c1 = vld1q_u8(codes + p * 32 + 16);
    const uint8x16_t r0 = vaddq_u8(vqtbl1q_u8(lut_lo, vandq_u8(c0, low4)), vqtbl1q_u8(lut_hi, vshrq_n_u8(c0, 4)));
    const uint8x16_t r1 = vaddq_u8(vqtbl1q_u8(lut_lo, vandq_u8(c1, low4)), vqtbl1q_u8(lut_hi, vshrq_n_u8(c1, 4)));
    acc0 = vaddw_u8(acc0, vget_low_u8(r0));
    acc1 = vaddw_high_u8(acc1, r0);
    acc2 = vaddw_u8(acc2, vget_low_u8(r1));
    acc3 = vaddw_high_u8(acc3, r1);
  }
  vst1q_u16(out, acc0);
  vst1q_u16(out + 8, acc1);
  vst1q_u16(out + 16, acc2);
  vst1q_u16(out + 24, acc3);
}

// Eight pairs (16 sub-spaces) at a time: LD4 splits the query into q0..q3
// across the 16 sub-spaces, the 16 LUT entries are then 11 byte adds (entry
// v = sum of q_b over the bits b of v), and the 16 x 16 byte matrix (entry x
// sub-space) is transposed to sub-space-major order by byte zips (entries
// 4g..4g+3 as one 32-bit word per sub-space) and ST4 of 32-bit lanes (the
// four words of a sub-space next to each other). GCC auto-vectorizes the
// scalar reference into nearly the same LD4 but twice the zips. Byte
// arithmetic wraps like the scalar uint8_t sums (never, for values <= 15).
void fastscan_luts_neon(const uint8_t* qu, size_t npairs, uint8_t* luts) {
  size_t p = 0;
  for (; p + 8 <= npairs; p += 8) {
    const uint8x16x4_t q = vld4q_u8(qu + 8 * p);
    uint8x16_t e[16];
    e[0] = vdupq_n_u8(0);
    e[1] = q.val[0];
    e[2] = q.val[1];
    e[3] = vaddq_u8(q.val[0], q.val[1]);
    e[4] = q.val[2];
    for (int v = 5; v < 8; ++v) e[v] = vaddq_u8(q.val[2], e[v - 4]);
    e[8] = q.val[3];
    for (int v = 9; v < 16; ++v) e[v] = vaddq_u8(q.val[3], e[v - 8]);
    // words[g].val[r]: sub-spaces 4r..4r+3, each the 32-bit word of entries
    // 4g..4g+3.
    uint32x4x4_t words[4];
    for (int g = 0; g < 4; ++g) {
      const uint8x16_t ac_lo = vzip1q_u8(e[4 * g], e[4 * g + 2]), ac_hi = vzip2q_u8(e[4 * g], e[4 * g + 2]);
      const uint8x16_t bd_lo = vzip1q_u8(e[4 * g + 1], e[4 * g + 3]), bd_hi = vzip2q_u8(e[4 * g + 1], e[4 * g + 3]);
      words[g].val[0] = vreinterpretq_u32_u8(vzip1q_u8(ac_lo, bd_lo));
      words[g].val[1] = vreinterpretq_u32_u8(vzip2q_u8(ac_lo, bd_lo));
      words[g].val[2] = vreinterpretq_u32_u8(vzip1q_u8(ac_hi, bd_hi));
      words[g].val[3] = vreinterpretq_u32_u8(vzip2q_u8(ac_hi, bd_hi));
    }
    uint32_t* out = reinterpret_cast<uint32_t*>(luts + 32 * p);
    for (int r = 0; r < 4; ++r) {
      uint32x4x4_t rows;
      for (int g = 0; g < 4; ++g) rows.val[g] = words[g].val[r];
      vst4q_u32(out + 16 * r, rows);
    }
  }
  // The last npairs % 8 pairs (none in an index: npairs = padded_dim / 8 is
  // a multiple of 8): entry v = sum_b bit_b(v) * q[b], as four
  // multiply-adds of a broadcast q[b] with a 0/1 weight vector.
  static const uint8_t kWeights[4][16] = {
      {0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1},
      {0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1},
      {0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1},
      {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1},
  };
  const uint8x16_t w0 = vld1q_u8(kWeights[0]), w1 = vld1q_u8(kWeights[1]);
  const uint8x16_t w2 = vld1q_u8(kWeights[2]), w3 = vld1q_u8(kWeights[3]);
  for (; p < npairs; ++p) {
    const uint8x8_t q = vld1_u8(qu + 8 * p);
    uint8x16_t a = vmulq_u8(w0, vdupq_lane_u8(q, 0));
    uint8x16_t b = vmulq_u8(w0, vdupq_lane_u8(q, 4));
    a = vmlaq_u8(a, w1, vdupq_lane_u8(q, 1));
    b = vmlaq_u8(b, w1, vdupq_lane_u8(q, 5));
    a = vmlaq_u8(a, w2, vdupq_lane_u8(q, 2));
    b = vmlaq_u8(b, w2, vdupq_lane_u8(q, 6));
    a = vmlaq_u8(a, w3, vdupq_lane_u8(q, 3));
    b = vmlaq_u8(b, w3, vdupq_lane_u8(q, 7));
    vst1q_u8(luts + 32 * p, a);
    vst1q_u8(luts + 32 * p + 16, b);
  }
}

// 16 columns are 4 vectors; two points at a time use 8 accumulators.
void dot_tile16_neon(const float* xs, size_t np, size_t dim, const float* ct, float* out) {
  size_t p = 0;
  for (; p + 2 <= np; p += 2) {
    float32x4_t a0 = vdupq_n_f32(0.f), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    const float* x0 = xs + p * dim;
    const float* x1 = x0 + dim;
    for (size_t t = 0; t < dim; ++t) {
      const float* c = ct + t * 16;
      const float32x4_t c0 = vld1q_f32(c), c1 = vld1q_f32(c + 4), c2 = vld1q_f32(c + 8), c3 = vld1q_f32(c + 12);
      const float u = x0[t], v = x1[t];
      a0 = vfmaq_n_f32(a0, c0, u);
      a1 = vfmaq_n_f32(a1, c1, u);
      a2 = vfmaq_n_f32(a2, c2, u);
      a3 = vfmaq_n_f32(a3, c3, u);
      b0 = vfmaq_n_f32(b0, c0, v);
      b1 = vfmaq_n_f32(b1, c1, v);
      b2 = vfmaq_n_f32(b2, c2, v);
      b3 = vfmaq_n_f32(b3, c3, v);
    }
    float* o = out + p * 16;
    vst1q_f32(o, a0);
    vst1q_f32(o + 4, a1);
    vst1q_f32(o + 8, a2);
    vst1q_f32(o + 12, a3);
    vst1q_f32(o + 16, b0);
    vst1q_f32(o + 20, b1);
    vst1q_f32(o + 24, b2);
    vst1q_f32(o + 28, b3);
  }
  for (; p < np; ++p) {
    float32x4_t a0 = vdupq_n_f32(0.f), a1 = a0, a2 = a0, a3 = a0;
    const float* x0 = xs + p * dim;
    for (size_t t = 0; t < dim; ++t) {
      const float* c = ct + t * 16;
      const float u = x0[t];
      a0 = vfmaq_n_f32(a0, vld1q_f32(c), u);
      a1 = vfmaq_n_f32(a1, vld1q_f32(c + 4), u);
      a2 = vfmaq_n_f32(a2, vld1q_f32(c + 8), u);
      a3 = vfmaq_n_f32(a3, vld1q_f32(c + 12), u);
    }
    float* o = out + p * 16;
    vst1q_f32(o, a0);
    vst1q_f32(o + 4, a1);
    vst1q_f32(o + 8, a2);
    vst1q_f32(o + 12, a3);
  }
}

// FCVTL / FCVTL2 widen the half-precision tile: part of base AArch64.
void dot_tile16_f16_neon(const float* xs, size_t np, size_t dim, const uint16_t* ct, float* out) {
  for (size_t p = 0; p < np; ++p) {
    float32x4_t a0 = vdupq_n_f32(0.f), a1 = a0, a2 = a0, a3 = a0;
    const float* x0 = xs + p * dim;
    for (size_t t = 0; t < dim; ++t) {
      const float16x8_t h0 = vreinterpretq_f16_u16(vld1q_u16(ct + t * 16));
      const float16x8_t h1 = vreinterpretq_f16_u16(vld1q_u16(ct + t * 16 + 8));
      const float u = x0[t];
      a0 = vfmaq_n_f32(a0, vcvt_f32_f16(vget_low_f16(h0)), u);
      a1 = vfmaq_n_f32(a1, vcvt_high_f32_f16(h0), u);
      a2 = vfmaq_n_f32(a2, vcvt_f32_f16(vget_low_f16(h1)), u);
      a3 = vfmaq_n_f32(a3, vcvt_high_f32_f16(h1), u);
    }
    float* o = out + p * 16;
    vst1q_f32(o, a0);
    vst1q_f32(o + 4, a1);
    vst1q_f32(o + 8, a2);
    vst1q_f32(o + 12, a3);
  }
}

[[gnu::always_inline]] inline uint32_t estimate_neon(const float* factors, const uint16_t* ip, size_t n,
                                                     const EstimateParams& p, float threshold, float* est,
                                                     float* lower) {
  kernels_detail::estimate_loop(factors, ip, n, p, est, lower);
  return kernels_detail::below_mask_loop(lower, n, threshold);
}

#if defined(RABITQ_NEON_DOTPROD)
// UDOT against a vector of ones sums the byte popcounts of 4 bytes into each
// 32-bit lane in one instruction: the same instruction count as the base
// version, but no pairwise-widening chain and no 16-bit flushes.
__attribute__((target("arch=armv8.2-a+dotprod"))) uint64_t popcount_and_neon_dotprod(const uint64_t* a,
                                                                                     const uint64_t* b, size_t words) {
  const uint8_t* pa = reinterpret_cast<const uint8_t*>(a);
  const uint8_t* pb = reinterpret_cast<const uint8_t*>(b);
  const uint8x16_t ones = vdupq_n_u8(1);
  uint32x4_t acc0 = vdupq_n_u32(0), acc1 = acc0;
  size_t i = 0;
  for (; i + 8 <= words; i += 8) {
    const uint8_t* x = pa + 8 * i;
    const uint8_t* y = pb + 8 * i;
    const uint8x16_t c0 =
        vaddq_u8(vcntq_u8(vandq_u8(vld1q_u8(x), vld1q_u8(y))), vcntq_u8(vandq_u8(vld1q_u8(x + 16), vld1q_u8(y + 16))));
    const uint8x16_t c1 = vaddq_u8(vcntq_u8(vandq_u8(vld1q_u8(x + 32), vld1q_u8(y + 32))),
                                   vcntq_u8(vandq_u8(vld1q_u8(x + 48), vld1q_u8(y + 48))));
    acc0 = vdotq_u32(acc0, c0, ones);
    acc1 = vdotq_u32(acc1, c1, ones);
  }
  for (; i + 2 <= words; i += 2) {
    acc0 = vdotq_u32(acc0, vcntq_u8(vandq_u8(vld1q_u8(pa + 8 * i), vld1q_u8(pb + 8 * i))), ones);
  }
  // Each 32-bit lane gathers at most 64 per 8 words; widen before the sum.
  uint64_t s = vaddvq_u64(vaddq_u64(vpaddlq_u32(acc0), vpaddlq_u32(acc1)));
  if (i < words) s += static_cast<uint64_t>(__builtin_popcountll(a[i] & b[i]));
  return s;
}

__attribute__((target("arch=armv8.2-a+dotprod"))) uint64_t bitplane_ip_neon_dotprod(const uint64_t* planes, size_t bits,
                                                                                    const uint64_t* code,
                                                                                    size_t words) {
  uint64_t s = 0;
  for (size_t b = 0; b < bits; ++b) s += popcount_and_neon_dotprod(planes + b * words, code, words) << b;
  return s;
}

#endif

// The portable loop, compiled here (the compiler vectorizes it for NEON).
size_t indices_below_neon(const float* x, size_t n, float t, uint32_t* out) {
  return kernels_detail::indices_below_loop(x, n, t, out);
}

int32_t ex_query_neon(const float* qres, size_t padded_dim, int8_t* q, float* max_abs, double* norm2) {
  return kernels_detail::ex_query_loop(qres, padded_dim, q, max_abs, norm2);
}

}  // namespace

const Kernels* neon_kernels() {
  static const Kernels table = {SimdLevel::kNeon,
                                "neon",
                                l2sq_neon,
                                dot_neon,
                                minmax_neon,
                                quantize_neon,
                                popcount_and_neon,
                                bitplane_ip_neon,
                                fastscan_neon,
                                dot_tile16_neon,
                                dot_tile16_f16_neon,
                                estimate_neon,
                                neon_detail::ex_ip,
                                fastscan_luts_neon,
                                kernels_detail::scan_blocks_loop<fastscan_neon, estimate_neon>,
                                indices_below_neon,
                                ex_query_neon};
  return &table;
}

bool neon_dotprod_kernels(uint64_t (**popcount_and)(const uint64_t*, const uint64_t*, size_t),
                          uint64_t (**bitplane_ip)(const uint64_t*, size_t, const uint64_t*, size_t)) {
#if defined(RABITQ_NEON_DOTPROD)
  *popcount_and = popcount_and_neon_dotprod;
  *bitplane_ip = bitplane_ip_neon_dotprod;
  return true;
#else
  (void)popcount_and;
  (void)bitplane_ip;
  return false;
#endif
}

}  // namespace rabitq

#else
namespace rabitq {
const Kernels* neon_kernels() { return nullptr; }
bool neon_dotprod_kernels(uint64_t (**)(const uint64_t*, const uint64_t*, size_t),
                          uint64_t (**)(const uint64_t*, size_t, const uint64_t*, size_t)) {
  return false;
}
}  // namespace rabitq
#endif
