// Multi-bit RaBitQ codes (extended RaBitQ, Gao et al., SIGMOD 2025): besides
// the sign bit that today's FastScan blocks hold, each coordinate of a rotated
// residual o gets ex_bits = bits - 1 more bits. Together they form the full
// code u_i in [0, 2^bits): u_i = (sign_i << ex_bits) + ex_i, and the quantized
// vector is xbar_i = u_i - (2^bits - 1) / 2 = +-(m_i + 1/2), where m_i is the
// magnitude level of |o_i| on a uniform grid whose scale is picked per vector
// to maximise <xbar, o> / ||xbar|| (bits = 1 is today's 1-bit code).
//
// Estimator (o, q: rotated vector and query residuals against one centroid):
//   <o, q> ~= <xbar, q> * ||o||^2 / <xbar, o>          (unbiased)
//   ||o - q||^2 ~= ||o||^2 + ||q||^2 + ip_scale * <xbar, q>,  ip_scale = -2 ||o||^2 / <xbar, o>
// With a = <xbar, o> / (||xbar|| ||o||), the error of the inner-product term is
// within epsilon * 2 ||o|| ||q|| sqrt((1 - a^2) / a^2) / sqrt(D - 1) with high
// probability, plus the rounding of the 8-bit query (see ExFactor).
//
// Storage per vector: the 1-bit code and Factor as today, plus
// ex_code_bytes(padded_dim, bits) bytes (layout: kernels/ex_layout.h) and one
// ExFactor (8 bytes).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../kernels/kernels.h"

namespace rabitq {

constexpr unsigned kMinBits = 1, kMaxBits = 9;

// Bytes of one vector's extra bits (0 for bits = 1). padded_dim % 64 == 0.
inline size_t ex_code_bytes(size_t padded_dim, unsigned bits) { return padded_dim * (bits - 1) / 8; }

// bfloat16 (the top half of a float) rounded toward +infinity for x >= 0,
// toward zero for x < 0: never below x, so a bound stored this way can only
// widen (by at most 2^-7 of itself). NaN stays NaN or becomes infinity.
inline uint16_t bf16_at_least(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  const bool positive_finite = (u >> 31) == 0 && (u & 0x7f800000u) != 0x7f800000u;
  if (positive_finite && (u & 0xffffu) != 0) u += 0x10000u;  // may carry into the exponent: still >= x
  return static_cast<uint16_t>(u >> 16);
}
inline float bf16_to_float(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

// Per-vector factors of the multi-bit estimate (next to today's Factor, whose
// residual_norm_sq is reused). 8 bytes: the estimate's scale in full float,
// the two terms of its error bound in bfloat16 rounded up (only the bound
// uses them, and a bound 0.8% wider at worst costs nothing measurable; the
// 4 bytes saved are what keeps a vector within D * bits / 8 + 24 bytes).
struct ExFactor {
  float ip_scale;           // -2 ||o||^2 / <xbar, o>; multiplies <xbar, q>
  uint16_t error_scale_bf;  // 2 ||o|| sqrt((1 - a^2) / a^2) / sqrt(D - 1) * calibration; times ||q||
  uint16_t quant_scale_bf;  // |ip_scale| * ||xbar|| / sqrt(12) * calibration; times the query step delta

  static ExFactor make(float ip_scale, float error_scale, float quant_scale) {
    return ExFactor{ip_scale, bf16_at_least(error_scale), bf16_at_least(quant_scale)};
  }
  float error_scale() const { return bf16_to_float(error_scale_bf); }
  float quant_scale() const { return bf16_to_float(quant_scale_bf); }
};
static_assert(sizeof(ExFactor) == 8, "ExFactor must stay 8 bytes");
// Format version 2 stored the three as floats (12 bytes a vector).
constexpr size_t kExFactorBytesV2 = 12;

// How the grid scale of each vector is chosen.
enum class ExRescale : uint32_t {
  // Every critical scale in a window around the optimum is visited (a heap
  // of the next level change per coordinate): the best <xbar, o> / ||xbar||.
  kExact = 0,
  // One scale per (bits, padded_dim), relative to ||o||, fitted once on
  // Gaussian vectors: O(D) per vector.
  kConstant = 1,
  // A coarse-to-fine search over scales around the best one (24 + 8 O(D)
  // evaluations): nearly the exact alignment at a bounded cost.
  kSearch = 2,
};

class ExEncoder {
 public:
  ExEncoder() = default;
  // bits in 2..9 (1 has no extra bits; use today's encoder).
  ExEncoder(size_t padded_dim, unsigned bits, ExRescale mode);

  size_t padded_dim() const { return pd_; }
  unsigned bits() const { return bits_; }
  unsigned ex_bits() const { return bits_ - 1; }
  ExRescale mode() const { return mode_; }
  size_t code_bytes() const { return ex_code_bytes(pd_, bits_); }
  // The constant scale (kConstant mode): t with m_i = floor(t |o_i| / ||o||).
  float constant_scale() const { return const_t_; }

  // o: the rotated residual (padded_dim floats), the same one today's encoder
  // takes the sign bits of (bit set when o_i > 0). Writes code_bytes() bytes
  // to ex (fully overwritten) and the factor; sign (optional) receives the
  // padded_dim / 8 sign bytes in the 1-bit code's order. Thread-safe.
  void encode(const float* o, uint8_t* ex, ExFactor* f, uint8_t* sign = nullptr) const;

  // <xbar, o> / (||xbar|| ||o||) of the code encode() picks for o (tests and
  // measurements).
  double alignment(const float* o) const;

 private:
  // Magnitude levels m (padded_dim) of o; returns <xbar,|o|> and ||xbar||^2.
  void levels(const float* o, double norm, uint32_t* m, double* ip, double* xx) const;
  size_t pd_ = 0;
  unsigned bits_ = 0;
  ExRescale mode_ = ExRescale::kConstant;
  float const_t_ = 0;
};

// The query side for one (query, cluster): the rotated query residual
// rounded to int8 with a symmetric step, q_i ~= delta * qi_i, qi_i in
// [-127, 127]. O(D); once per probed cluster.
struct ExQuery {
  std::vector<int8_t> q;  // padded_dim
  float delta = 0;        // max |q_i| / 127
  int64_t sum = 0;        // sum of qi
  float qnorm2 = 0;       // ||q||^2 of the float residual
  float qnorm = 0;
  unsigned bits = 0;
  void prepare(const float* qres, size_t padded_dim, unsigned bits);
};

struct ExEstimate {
  float distance;  // estimated ||o - q||^2 (plus Factor::residual_norm_sq's metric term)
  float bound;     // error bound at the epsilon given: true value in distance +- bound
};

// From the kernel result ip_u = Kernels::ex_ip(query.q, sign, ex, ...) of one
// vector: its estimated internal distance and bound. residual_norm_sq is the
// vector's Factor::residual_norm_sq (||o||^2, minus ||x||^2 under inner
// product), exactly as today's 1-bit estimate uses it.
inline ExEstimate ex_estimate(const ExQuery& query, int64_t ip_u, float residual_norm_sq, const ExFactor& f,
                              float epsilon) {
  // 2 <xbar, qi> = 2 <u, qi> - (2^bits - 1) sum(qi), exact in integers.
  const int64_t twice = 2 * ip_u - ((int64_t(1) << query.bits) - 1) * query.sum;
  const float xq = 0.5f * query.delta * static_cast<float>(twice);
  return {residual_norm_sq + query.qnorm2 + f.ip_scale * xq,
          epsilon * (f.error_scale() * query.qnorm + f.quant_scale() * query.delta)};
}

// Convenience: kernel + estimate for one candidate.
inline ExEstimate ex_estimate(const Kernels& k, const ExQuery& query, const uint8_t* sign, const uint8_t* ex,
                              float residual_norm_sq, const ExFactor& f, float epsilon) {
  const int64_t ip = k.ex_ip(query.q.data(), sign, ex, query.q.size(), query.bits - 1);
  return ex_estimate(query, ip, residual_norm_sq, f, epsilon);
}

// <xbar, q> for a float query (reference for tests): no query rounding.
double ex_xbar_dot(const float* q, const uint8_t* sign, const uint8_t* ex, size_t padded_dim, unsigned bits);

}  // namespace rabitq
