// AArch64 Advanced SIMD (NEON) kernels. NEON is part of the AArch64 base
// architecture, so this file needs no extra target flags; the one optional
// extension used (dotprod, for the popcount sums and ex_ip) sits behind
// per-function target attributes and dispatch.cc installs those functions
// only when the kernel reports it through getauxval(AT_HWCAP).
#include "estimate_loop.h"
#include "ex_layout.h"
#include "kernels.h"

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
void fastscan_neon(const uint8_t* codes, const uint8_t* luts, size_t npairs, uint16_t* out) {
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

// ---- multi-bit ex codes (layout: ex_layout.h) --------------------------------
// A group of 64 dimensions is four 16-byte vectors (dimensions 16j..16j+15 in
// vector j). Each vector is turned into signed bytes x with
//   u = x + 128 * bias, bias = 0 (EX <= 6), 1 (EX == 7), 1 + 2 * sign (EX == 8)
// so that one signed 8x8-bit product per dimension gives sum q * x, and the
// bias is a sum of (masked) query bytes. Up to EX = 6, u itself fits in a
// signed byte; at 7 and 8 it does not, and XOR 0x80 (x = u - 128) keeps it in
// range without splitting the code as the x86 kernels do.

#define RABITQ_NEON_INLINE inline __attribute__((always_inline))

// 64 bits (8 bytes at p, little-endian bit order) -> four vectors of 0x00 /
// 0xFF bytes, byte k of vector j = bit 16j + k.
RABITQ_NEON_INLINE void bits_to_masks(const uint8_t* p, uint8x16_t m[4]) {
  static const uint8_t kSpread[4][16] = {
      {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1},
      {2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3},
      {4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5},
      {6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7},
  };
  static const uint8_t kBit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
  const uint8x16_t bytes = vcombine_u8(vld1_u8(p), vdup_n_u8(0));
  const uint8x16_t bit = vld1q_u8(kBit);
  for (int j = 0; j < 4; ++j) m[j] = vtstq_u8(vqtbl1q_u8(bytes, vld1q_u8(kSpread[j])), bit);
}

// The signed bytes x of group g (see above), from the ex sections and the
// sign masks.
template <unsigned EX>
RABITQ_NEON_INLINE void ex_operands(const uint8_t* ex, size_t pd, size_t g, const uint8x16_t sign[4], int8x16_t x[4]) {
  constexpr unsigned kSh4 = EX & 3u, kSh2 = EX & 1u;
  uint8x16_t e[4];
  if (EX == 8) {
    for (int j = 0; j < 4; ++j) e[j] = vld1q_u8(ex + 64 * g + 16 * j);
  } else {
    for (int j = 0; j < 4; ++j) e[j] = vdupq_n_u8(0);
    size_t off = 0;
    if (EX & 4u) {
      // Byte k of the 32: dimension k (low nibble), 32 + k (high nibble).
      const uint8x16_t v0 = vld1q_u8(ex + 32 * g), v1 = vld1q_u8(ex + 32 * g + 16);
      const uint8x16_t low4 = vdupq_n_u8(0x0f);
      e[0] = vshlq_n_u8(vandq_u8(v0, low4), kSh4);
      e[1] = vshlq_n_u8(vandq_u8(v1, low4), kSh4);
      e[2] = vshlq_n_u8(vshrq_n_u8(v0, 4), kSh4);
      e[3] = vshlq_n_u8(vshrq_n_u8(v1, 4), kSh4);
      off += pd / 2;
    }
    if (EX & 2u) {
      // Byte k of the 16: dimension 16j + k in bits 2j, 2j + 1.
      const uint8x16_t w = vld1q_u8(ex + off + 16 * g);
      const uint8x16_t low2 = vdupq_n_u8(0x03);
      e[0] = vorrq_u8(e[0], vshlq_n_u8(vandq_u8(w, low2), kSh2));
      e[1] = vorrq_u8(e[1], vshlq_n_u8(vandq_u8(vshrq_n_u8(w, 2), low2), kSh2));
      e[2] = vorrq_u8(e[2], vshlq_n_u8(vandq_u8(vshrq_n_u8(w, 4), low2), kSh2));
      e[3] = vorrq_u8(e[3], vshlq_n_u8(vshrq_n_u8(w, 6), kSh2));
      off += pd / 4;
    }
    if (EX & 1u) {
      uint8x16_t m[4];
      bits_to_masks(ex + off + 8 * g, m);
      for (int j = 0; j < 4; ++j) e[j] = vorrq_u8(e[j], vshrq_n_u8(m[j], 7));
    }
  }
  for (int j = 0; j < 4; ++j) {
    if (EX <= 6) {
      x[j] = vreinterpretq_s8_u8(vorrq_u8(e[j], vandq_u8(sign[j], vdupq_n_u8(static_cast<uint8_t>(1u << EX)))));
    } else if (EX == 7) {
      // u = e | sign << 7; x = u ^ 0x80 sets the top bit where the sign is 0.
      x[j] = vreinterpretq_s8_u8(vorrq_u8(e[j], vbicq_u8(vdupq_n_u8(0x80), sign[j])));
    } else {
      x[j] = vreinterpretq_s8_u8(veorq_u8(e[j], vdupq_n_u8(0x80)));
    }
  }
}

// Widens four int32 lanes to int64 and sums them.
RABITQ_NEON_INLINE int64_t sum_lanes(int32x4_t v) { return vaddvq_s64(vpaddlq_s32(v)); }

// Base NEON: SMULL / SMLAL pair two products per 16-bit lane (each |q x| <=
// 127 * 128, so the pair stays below 2^15 for q in [-127, 127]), SADALP
// widens them into 32-bit lanes. The bias sums use SADDLP / SADALP on the
// query bytes.
template <unsigned EX>
int64_t ex_ip_neon_t(const int8_t* q, const uint8_t* sign, const uint8_t* ex, size_t pd) {
  int32x4_t acc0 = vdupq_n_s32(0), acc1 = acc0, bias = acc0;
  for (size_t g = 0; g < pd / 64; ++g) {
    uint8x16_t s[4];
    int8x16_t x[4];
    bits_to_masks(sign + 8 * g, s);
    ex_operands<EX>(ex, pd, g, s, x);
    const int8_t* qg = q + 64 * g;
    const int8x16_t q0 = vld1q_s8(qg), q1 = vld1q_s8(qg + 16), q2 = vld1q_s8(qg + 32), q3 = vld1q_s8(qg + 48);
    int16x8_t p0 = vmull_s8(vget_low_s8(q0), vget_low_s8(x[0]));
    int16x8_t p1 = vmull_high_s8(q0, x[0]);
    int16x8_t p2 = vmull_s8(vget_low_s8(q2), vget_low_s8(x[2]));
    int16x8_t p3 = vmull_high_s8(q2, x[2]);
    p0 = vmlal_s8(p0, vget_low_s8(q1), vget_low_s8(x[1]));
    p1 = vmlal_high_s8(p1, q1, x[1]);
    p2 = vmlal_s8(p2, vget_low_s8(q3), vget_low_s8(x[3]));
    p3 = vmlal_high_s8(p3, q3, x[3]);
    acc0 = vpadalq_s16(acc0, p0);
    acc1 = vpadalq_s16(acc1, p1);
    acc0 = vpadalq_s16(acc0, p2);
    acc1 = vpadalq_s16(acc1, p3);
    if (EX >= 7) {
      // 16-bit lanes gather at most 8 query bytes (<= 1016) per group.
      int16x8_t b = vpaddlq_s8(q0);
      b = vpadalq_s8(b, q1);
      b = vpadalq_s8(b, q2);
      b = vpadalq_s8(b, q3);
      if (EX == 8) {
        // bias 1 + 2 * sign: the query bytes where the sign is set, twice.
        int16x8_t m = vpaddlq_s8(vandq_s8(q0, vreinterpretq_s8_u8(s[0])));
        m = vpadalq_s8(m, vandq_s8(q1, vreinterpretq_s8_u8(s[1])));
        m = vpadalq_s8(m, vandq_s8(q2, vreinterpretq_s8_u8(s[2])));
        m = vpadalq_s8(m, vandq_s8(q3, vreinterpretq_s8_u8(s[3])));
        bias = vpadalq_s16(bias, m);
        bias = vpadalq_s16(bias, m);
      }
      bias = vpadalq_s16(bias, b);
    }
  }
  // 32-bit lanes stay far from overflow (at most 2^16 dimensions).
  return sum_lanes(acc0) + sum_lanes(acc1) + 128 * sum_lanes(bias);
}

int64_t ex_ip_neon(const int8_t* q, const uint8_t* sign, const uint8_t* ex, size_t pd, unsigned ex_bits) {
  switch (ex_bits) {
    case 1:
      return ex_ip_neon_t<1>(q, sign, ex, pd);
    case 2:
      return ex_ip_neon_t<2>(q, sign, ex, pd);
    case 3:
      return ex_ip_neon_t<3>(q, sign, ex, pd);
    case 4:
      return ex_ip_neon_t<4>(q, sign, ex, pd);
    case 5:
      return ex_ip_neon_t<5>(q, sign, ex, pd);
    case 6:
      return ex_ip_neon_t<6>(q, sign, ex, pd);
    case 7:
      return ex_ip_neon_t<7>(q, sign, ex, pd);
    default:
      return ex_ip_neon_t<8>(q, sign, ex, pd);
  }
}

void estimate_neon(const float* factors, const uint16_t* ip, size_t n, const EstimateParams& p, float* est,
                   float* lower) {
  kernels_detail::estimate_loop(factors, ip, n, p, est, lower);
}

#if defined(__linux__) && (!defined(__clang__) || __clang_major__ >= 16)
#define RABITQ_NEON_DOTPROD 1
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

// SDOT sums four signed byte products into each 32-bit lane: one instruction
// per 16 dimensions where the base version needs three, and no 16-bit
// intermediate. The bias 1 (+ 2 * sign) is a dot product with a small
// weight vector.
template <unsigned EX>
__attribute__((target("arch=armv8.2-a+dotprod"))) int64_t ex_ip_neon_dotprod_t(const int8_t* q, const uint8_t* sign,
                                                                               const uint8_t* ex, size_t pd) {
  int32x4_t acc0 = vdupq_n_s32(0), acc1 = acc0, bias = acc0;
  for (size_t g = 0; g < pd / 64; ++g) {
    uint8x16_t s[4];
    int8x16_t x[4];
    bits_to_masks(sign + 8 * g, s);
    ex_operands<EX>(ex, pd, g, s, x);
    const int8_t* qg = q + 64 * g;
    const int8x16_t q0 = vld1q_s8(qg), q1 = vld1q_s8(qg + 16), q2 = vld1q_s8(qg + 32), q3 = vld1q_s8(qg + 48);
    acc0 = vdotq_s32(acc0, q0, x[0]);
    acc1 = vdotq_s32(acc1, q1, x[1]);
    acc0 = vdotq_s32(acc0, q2, x[2]);
    acc1 = vdotq_s32(acc1, q3, x[3]);
    if (EX >= 7) {
      int8x16_t w[4];
      for (int j = 0; j < 4; ++j) {
        w[j] = vdupq_n_s8(1);
        if (EX == 8) w[j] = vorrq_s8(w[j], vandq_s8(vreinterpretq_s8_u8(s[j]), vdupq_n_s8(2)));
      }
      bias = vdotq_s32(bias, q0, w[0]);
      bias = vdotq_s32(bias, q1, w[1]);
      bias = vdotq_s32(bias, q2, w[2]);
      bias = vdotq_s32(bias, q3, w[3]);
    }
  }
  return sum_lanes(acc0) + sum_lanes(acc1) + 128 * sum_lanes(bias);
}

__attribute__((target("arch=armv8.2-a+dotprod"))) int64_t ex_ip_neon_dotprod(const int8_t* q, const uint8_t* sign,
                                                                             const uint8_t* ex, size_t pd,
                                                                             unsigned ex_bits) {
  switch (ex_bits) {
    case 1:
      return ex_ip_neon_dotprod_t<1>(q, sign, ex, pd);
    case 2:
      return ex_ip_neon_dotprod_t<2>(q, sign, ex, pd);
    case 3:
      return ex_ip_neon_dotprod_t<3>(q, sign, ex, pd);
    case 4:
      return ex_ip_neon_dotprod_t<4>(q, sign, ex, pd);
    case 5:
      return ex_ip_neon_dotprod_t<5>(q, sign, ex, pd);
    case 6:
      return ex_ip_neon_dotprod_t<6>(q, sign, ex, pd);
    case 7:
      return ex_ip_neon_dotprod_t<7>(q, sign, ex, pd);
    default:
      return ex_ip_neon_dotprod_t<8>(q, sign, ex, pd);
  }
}
#endif

}  // namespace

const Kernels* neon_kernels() {
  static const Kernels table = {SimdLevel::kNeon,    "neon",
                                l2sq_neon,           dot_neon,
                                minmax_neon,         quantize_neon,
                                popcount_and_neon,   bitplane_ip_neon,
                                fastscan_neon,       dot_tile16_neon,
                                dot_tile16_f16_neon, estimate_neon,
                                ex_ip_neon,          fastscan_luts_neon};
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

ExIpFn neon_dotprod_ex_ip() {
#if defined(RABITQ_NEON_DOTPROD)
  return ex_ip_neon_dotprod;
#else
  return nullptr;
#endif
}

}  // namespace rabitq

#else
namespace rabitq {
const Kernels* neon_kernels() { return nullptr; }
ExIpFn neon_dotprod_ex_ip() { return nullptr; }
bool neon_dotprod_kernels(uint64_t (**)(const uint64_t*, const uint64_t*, size_t),
                          uint64_t (**)(const uint64_t*, size_t, const uint64_t*, size_t)) {
  return false;
}
}  // namespace rabitq
#endif
