#include "metric.h"

#include <cmath>
#include <cstdio>
#include <limits>

#include "common.h"

namespace rabitq {

namespace {
double norm2_of(const float* x, size_t dim) {
  double norm2 = 0;
  for (size_t i = 0; i < dim; ++i) norm2 += double(x[i]) * x[i];
  return norm2;
}

// x / ||x|| in double: 1/norm overflows a float for tiny (subnormal) rows.
void normalize_into(const float* x, size_t dim, double norm2, float* out) {
  const double inv = 1.0 / std::sqrt(norm2);
  for (size_t i = 0; i < dim; ++i) out[i] = static_cast<float>(x[i] * inv);
}
}  // namespace

void MetricSpace::check_direction(double norm2, const std::string& subject) const {
  if (metric_ == Metric::kCosine && !(norm2 > 0.0))
    throw Error(ErrorKind::kRange, subject + " is a zero vector, which has no direction under the cosine metric");
}

void MetricSpace::check_rows(const float* data, size_t n, const char* what) const {
  for (size_t r = 0; r < n; ++r) {
    const float* x = data + r * dim_;
    double norm2 = 0;
    for (size_t i = 0; i < dim_; ++i) {
      if (!std::isfinite(x[i])) {
        throw Error(ErrorKind::kRange, std::string(what) + " must contain only finite numbers, found " +
                                           std::to_string(x[i]) + " at row " + std::to_string(r) + ", column " +
                                           std::to_string(i));
      }
      if (std::fabs(x[i]) > kMaxAbsComponent) {
        char value[32];
        std::snprintf(value, sizeof value, "%g", double(x[i]));
        throw Error(ErrorKind::kRange, std::string(what) +
                                           " must hold numbers of magnitude at most 1e15 (squared distances must fit "
                                           "a float), found " +
                                           value + " at row " + std::to_string(r) + ", column " + std::to_string(i));
      }
      norm2 += double(x[i]) * x[i];
    }
    check_direction(norm2, std::string(what) + " row " + std::to_string(r));
  }
}

void MetricSpace::check_queries(const float* queries, size_t nq) const {
  if (metric_ != Metric::kCosine) return;
  for (size_t q = 0; q < nq; ++q) check_direction(norm2_of(queries + q * dim_, dim_), "query " + std::to_string(q));
}

const float* MetricSpace::prepare_rows(const float* data, size_t n, std::vector<float>* storage) const {
  if (metric_ != Metric::kCosine) return data;
  storage->resize(n * dim_);
  for (size_t r = 0; r < n; ++r) {
    const float* x = data + r * dim_;
    normalize_into(x, dim_, norm2_of(x, dim_), storage->data() + r * dim_);
  }
  return storage->data();
}

const float* MetricSpace::prepare_query(const float* query, float* normalized) const {
  if (metric_ != Metric::kCosine) return query;
  const double norm2 = norm2_of(query, dim_);
  check_direction(norm2, "query");
  normalize_into(query, dim_, norm2, normalized);
  return normalized;
}

float MetricSpace::missing_distance() const {
  return metric_ == Metric::kInnerProduct ? -std::numeric_limits<float>::infinity()
                                          : std::numeric_limits<float>::infinity();
}

}  // namespace rabitq
