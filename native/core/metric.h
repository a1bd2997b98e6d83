// The one place that knows the three metrics. Internally every metric is a
// squared L2 distance, so one search path serves all three:
// - l2: as is;
// - cosine: rows and queries are normalized, and ||a - b||^2 = 2 - 2 cos;
// - inner product: the index ranks by ||q||^2 - 2<x,q> = ||x-q||^2 - ||x||^2,
//   so each vector's constant term carries -||x||^2 (see vector_offset) and
//   the rest of the estimator and its bound stay the L2 ones.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/kernels.h"

namespace rabitq {

enum class Metric : uint32_t { kL2 = 0, kCosine = 1, kInnerProduct = 2 };

// Largest magnitude of a stored vector's (and a query's, checked in
// TypeScript) component. Distances are float: with |x|, |q| <= 1e15 every
// squared distance or inner product over up to 65,536 dimensions stays
// below 2.7e35, far from float's 3.4e38. A component of 1e20 is finite but
// its square is not, and such a vector was stored and then never found.
constexpr double kMaxAbsComponent = 1e15;

class MetricSpace {
 public:
  MetricSpace() = default;
  MetricSpace(Metric m, size_t dim) : metric_(m), dim_(dim) {}
  Metric metric() const { return metric_; }
  size_t dim() const { return dim_; }

  // Whether v (e.g. read from a file) names a metric.
  static bool valid(uint64_t v) { return v <= 2; }

  // Finite values of magnitude <= kMaxAbsComponent everywhere; under cosine,
  // no zero rows. Names the row (and column) of `what`. Runs on a worker: the JS thread never scans a large input.
  void check_rows(const float* data, size_t n, const char* what) const;
  // Under cosine, throws "<subject> is a zero vector, ..." unless norm2 > 0.
  void check_direction(double norm2, const std::string& subject) const;
  // Under cosine, checks every query of a batch (named by number) first.
  void check_queries(const float* queries, size_t nq) const;

  // The rows the index stores and encodes: data itself, or normalized copies
  // in *storage under cosine.
  const float* prepare_rows(const float* data, size_t n, std::vector<float>* storage) const;
  // The same for one query; normalized has dim floats. Throws on a zero
  // query under cosine.
  const float* prepare_query(const float* query, float* normalized) const;

  // Inner product: probe the clusters whose centroid has the largest <q, c>
  // (the residual decomposition <x,q> = <c,q> + <x-c,q>), not the nearest.
  // With L2 probing, recall@10 was 0 at nprobe 40 of 200 on data whose norms
  // vary (the largest inner products live in clusters far from the query).
  bool probe_by_ip() const { return metric_ == Metric::kInnerProduct; }

  // The term the encoder subtracts from a vector's ||x - c||^2: ||x||^2 under
  // inner product (in double, over the dim stored coordinates), else 0.
  double vector_offset(const float* x) const {
    double xnorm2 = 0;
    if (metric_ == Metric::kInnerProduct)
      for (size_t i = 0; i < dim_; ++i) xnorm2 += double(x[i]) * x[i];
    return xnorm2;
  }
  // ||q||^2 under inner product (the constant of every internal distance).
  float query_norm2(const Kernels& k, const float* q) const {
    return metric_ == Metric::kInnerProduct ? k.dot(q, q, dim_) : 0.f;
  }
  // Exact internal distance for re-ranking (query prepared).
  inline float exact(const Kernels& k, const float* q, const float* x, float qnorm2) const {
    return metric_ == Metric::kInnerProduct ? qnorm2 - 2.f * k.dot(q, x, dim_) : k.l2sq(q, x, dim_);
  }
  // Internal distance -> the caller's: squared L2, 1 - cos, or <x, q>.
  float to_metric(float internal, float qnorm2) const {
    switch (metric_) {
      case Metric::kCosine:
        return 0.5f * internal;  // ||a - b||^2 = 2 - 2 cos for unit vectors
      case Metric::kInnerProduct:
        return 0.5f * (qnorm2 - internal);
      default:
        return internal;
    }
  }
  // What an empty result slot holds: the worst distance of the metric.
  float missing_distance() const;

 private:
  Metric metric_ = Metric::kL2;
  size_t dim_ = 0;
};

}  // namespace rabitq
