// AArch64 NEON kernel for the multi-bit inner product (ex_ip), base and
// dotprod versions; the rest of the NEON table is in kernels_neon.cc.
#include "kernels_neon_ex.h"

#include "ex_layout.h"
#include "kernels.h"

#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>

namespace rabitq {
namespace {

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

}  // namespace

namespace neon_detail {
int64_t ex_ip(const int8_t* q, const uint8_t* sign, const uint8_t* ex, size_t pd, unsigned ex_bits) {
  return ex_ip_neon(q, sign, ex, pd, ex_bits);
}
}  // namespace neon_detail

#if defined(RABITQ_NEON_DOTPROD)
namespace {
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
}  // namespace
#endif

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
ExIpFn neon_dotprod_ex_ip() { return nullptr; }
}  // namespace rabitq
#endif
