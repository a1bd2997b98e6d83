// RaBitQ: 1-bit codes of rotated residuals, their per-vector factors, the
// per-(query, cluster) preparation (4-bit query, FastScan LUTs) and the
// estimate of a block of codes with its error bound.
//
// Multi-bit codes (bits > 1, quantizer/ex_code.h): the 1-bit code stays the
// FastScan pass; encode_ex() next to encode() writes the extra bits and an
// ExFactor (ClusterStore's ex columns), prepare_cluster() also rounds the
// residual to the 8-bit ExQuery, and estimate_ex() refines the estimate of
// one candidate the 1-bit bound keeps.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "code_layout.h"
#include "kernels/kernels.h"
#include "quantizer/ex_code.h"
#include "rotation.h"

namespace rabitq {

// Per-vector RaBitQ factors, kept together so one cache line serves the
// estimate and its bound.
struct Factor {
  float residual_norm_sq;  // ||x - c||^2 (minus ||x||^2 under inner product, see metric.h)
  float ip_scale;          // -2 ||x - c|| / (<xbar, o> sqrt(D))
  float popcount;          // number of set bits in the code
  float error_scale;       // 1.2 * 2 ||x - c|| sqrt((1 - <xbar,o>^2) / <xbar,o>^2) / sqrt(D - 1)
};
static_assert(sizeof(Factor) == 16, "Factor must stay 16 bytes");
// The estimate kernel reads a Factor as 4 floats in this order.
static_assert(offsetof(Factor, ip_scale) == 4 && offsetof(Factor, popcount) == 8 && offsetof(Factor, error_scale) == 12,
              "Factor layout is read by Kernels::estimate");

constexpr uint32_t kQuantizedQueryBits = 4;  // bits per coordinate of the quantized query
constexpr size_t kRoundingOffsetRows = 64;   // rows of randomized-rounding offsets

class RabitqQuantizer;

// One query's quantizer state, reused across queries (per thread): the
// rotated query, then the current cluster's quantized residual, LUTs and
// terms, and the output of the last estimate_block().
struct QuantizedQuery {
  std::vector<float> qrot, qres, est, lower;
  std::vector<uint8_t> qu, luts, tail;
  std::vector<uint64_t> planes, code_bits;
  std::vector<uint16_t> ip;
  float lo = 0, delta = 0, sumq = 0, qnorm2 = 0;  // current cluster's terms
  uint64_t query_hash = 0;
  // The current cluster's 8-bit residual (bits > 1 only). Made by the
  // first estimate_ex() of the cluster, not by prepare_cluster(): in the
  // farther probed clusters often no vector passes the 1-bit bound, and
  // preparing it for every (query, cluster) cost ~10% of a 3-bit search.
  // Mutable like the scratch below: the scan keeps the QuantizedQuery const
  // and it is per thread like the rest.
  mutable ExQuery ex;
  mutable bool ex_stale = true;
  // Scratch of estimate_ex(): one code's sign bits.
  mutable std::vector<uint8_t> sign;
  void ensure(const RabitqQuantizer& q);
};

class RabitqQuantizer {
 public:
  // Geometry for vectors of `dim` (padded to a multiple of 64) and codes of
  // `bits` bits per dimension (1..9; above 1 with extra bits).
  void init(size_t dim, unsigned bits = 1);
  // A new quantizer for these centroids: a rotation, the rotated centroids
  // and the randomized-rounding offsets, each from its own seed.
  void train(RotationKind kind, uint64_t rotation_seed, uint64_t rounding_seed, const float* centroids, size_t nc);
  // The same state read back from a file.
  void restore(Rotation rotation, std::vector<float> rotated_centroids, std::vector<float> rounding_offsets);

  size_t dim() const { return dim_; }
  size_t padded_dim() const { return padded_dim_; }
  const CodeLayout& layout() const { return layout_; }
  size_t code_bytes() const { return layout_.npairs; }
  unsigned bits() const { return bits_; }
  // Bytes of one vector's extra bits (0 at 1 bit).
  size_t ex_code_bytes() const { return rabitq::ex_code_bytes(padded_dim_, bits_); }
  const Rotation& rotation() const { return rotation_; }
  const std::vector<float>& rotated_centroids() const { return rotated_centroids_; }
  const std::vector<float>& rounding_offsets() const { return rounding_offsets_; }
  size_t rounding_rows() const { return rounding_offsets_.size() / padded_dim_; }

  // Rotated residual of x against centroid c -> its 1-bit code (code_bytes()
  // bytes) and factors. x_offset is subtracted from ||x - c||^2 (the
  // metric's vector term). scratch: padded_dim floats.
  void encode(size_t c, const float* x, double x_offset, float* scratch, uint8_t* code, Factor* f) const;

  // The extra bits of the residual encode() left in scratch (bits > 1):
  // ex_code_bytes() bytes and the factor. Thread-safe.
  void encode_ex(const float* scratch, uint8_t* ex, ExFactor* f) const { ex_encoder_.encode(scratch, ex, f); }

  // Per query: rotation and the seed of the rounding-row choice.
  void begin_query(QuantizedQuery& q, const float* query) const;
  // Per (query, cluster): residual, 4-bit quantization, LUTs (and bit
  // planes for the reference path).
  void prepare_cluster(QuantizedQuery& q, size_t c, bool bitplane) const;
  // The kernel's terms after prepare_cluster; epsilon widens the bound.
  EstimateParams estimate_params(const QuantizedQuery& q, float epsilon) const;
  // Estimates and lower bounds of vectors [b0, b0 + nb) of a cluster's codes
  // (count vectors, laid out by layout()) into q.est and q.lower. FastScan,
  // or the bit-plane reference path: the same values. Returns the mask of
  // the vectors whose lower bound is <= threshold (Kernels::estimate).
  // est / lower: where to write them instead (nb floats each).
  uint32_t estimate_block(QuantizedQuery& q, const uint8_t* codes, size_t count, const Factor* factors, size_t b0,
                          size_t nb, bool bitplane, const EstimateParams& ep, float threshold, float* est = nullptr,
                          float* lower = nullptr) const {
    const Kernels& k = active_kernels();
    uint16_t* ip = q.ip.data();
    if (bitplane) {
      for (size_t j = 0; j < nb; ++j) {
        layout_.unpack_bits(codes, count, b0 + j, q.code_bits.data());
        ip[j] = static_cast<uint16_t>(
            k.bitplane_ip(q.planes.data(), kQuantizedQueryBits, q.code_bits.data(), layout_.words));
      }
    } else {
      k.fastscan(layout_.scan_block(codes, count, b0, q.tail.data()), q.luts.data(), layout_.npairs, ip);
    }
    return k.estimate(reinterpret_cast<const float*>(factors + b0), ip, nb, ep, threshold, est ? est : q.est.data(),
                      lower ? lower : q.lower.data());
  }
  // estimate_block() over a whole cluster: est / lower hold 32 floats per
  // block (the tail block's unused), masks[b] is block b's mask. The full
  // blocks take one Kernels::scan_blocks call.
  void estimate_cluster(QuantizedQuery& q, const uint8_t* codes, size_t count, const Factor* factors, bool bitplane,
                        const EstimateParams& ep, float threshold, float* est, float* lower, uint32_t* masks) const {
    const size_t full = bitplane ? 0 : count / kFastScanBlock;
    if (full > 0)
      active_kernels().scan_blocks(codes, q.luts.data(), layout_.npairs, reinterpret_cast<const float*>(factors), full,
                                   ep, threshold, est, lower, masks);
    for (size_t b0 = full * kFastScanBlock; b0 < count; b0 += kFastScanBlock)
      masks[b0 / kFastScanBlock] = estimate_block(q, codes, count, factors, b0, std::min(kFastScanBlock, count - b0),
                                                  bitplane, ep, threshold, est + b0, lower + b0);
  }
  // Width of one vector's bound (epsilon 1) after prepare_cluster.
  float error_bound(const QuantizedQuery& q, const Factor& f) const;

  // The multi-bit estimate of vector `local` of a cluster (count vectors,
  // 1-bit codes `codes`, its ex code and factors) after prepare_cluster;
  // bits > 1. Its bound is epsilon times the estimator's error width.
  ExEstimate estimate_ex(const QuantizedQuery& q, const uint8_t* codes, size_t count, size_t local, const uint8_t* ex,
                         const Factor& f, const ExFactor& ef, float epsilon) const {
    if (q.ex_stale) {
      q.ex.prepare(q.qres.data(), padded_dim_, bits_);
      q.ex_stale = false;
    }
    layout_.get(codes, count, local, q.sign.data());
    return ex_estimate(active_kernels(), q.ex, q.sign.data(), ex, f.residual_norm_sq, ef, epsilon);
  }

 private:
  size_t dim_ = 0, padded_dim_ = 0;
  CodeLayout layout_;
  unsigned bits_ = 1;
  ExEncoder ex_encoder_;  // bits > 1
  float quant_sqrt_ = 0;  // sqrt(D/2): typical sqrt(popcount) for the query-quantization bound
  Rotation rotation_;
  std::vector<float> rotated_centroids_;  // num_clusters x padded_dim
  std::vector<float> rounding_offsets_;   // randomized rounding of the query, rows x padded_dim
};

}  // namespace rabitq
