// Brute-force k nearest neighbours: the ground truth for tests and benchmarks.
#pragma once
#include <cstddef>
#include <cstdint>

#include "thread_pool.h"

namespace rabitq {

// ids/dists: nq*k, sorted by (squared L2 distance, id); missing slots are
// id -1 and +inf. Candidates come from the blocked inner-product form and are
// re-scored with the exact squared-distance kernel, so near ties keep the
// order of the plain definition.
void exact_knn(const float* base, size_t n, const float* queries, size_t nq, size_t dim, size_t k, int32_t* ids,
               float* dists, ThreadPool& pool, size_t threads);

}  // namespace rabitq
