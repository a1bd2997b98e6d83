#include "validation.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "common.h"
#include "ivf/id_map.h"
#include "rotation.h"

namespace rabitq {

size_t checked_build_shape(size_t dim, size_t n, Metric metric, size_t num_clusters, RotationKind rotation) {
  RABITQ_THROW_IF_NOT(dim >= 1 && dim <= 65536, kRange, "dim must be between 1 and 65536");
  RABITQ_THROW_IF_NOT(rotation != RotationKind::kDense || dim <= kMaxDenseRotationDim, kRange,
                      "rotation 'dense' is limited to dim <= " + std::to_string(kMaxDenseRotationDim) +
                          " (its set-up is O(dim^3)); got dim " + std::to_string(dim) + ": use rotation 'fht'");
  RABITQ_THROW_IF_NOT(n >= 1, kRange, "cannot build an index from an empty set of vectors");
  RABITQ_THROW_IF_NOT(MetricSpace::valid(static_cast<uint64_t>(metric)), kRange, "unknown metric");
  size_t nc = num_clusters;
  if (nc == 0) nc = std::max<size_t>(1, std::min(n, static_cast<size_t>(std::lround(4.0 * std::sqrt(double(n))))));
  RABITQ_THROW_IF_NOT(nc >= 1 && nc <= n, kRange,
                      "numClusters must be between 1 and the number of vectors (" + std::to_string(n) + ")");
  RABITQ_THROW_IF_NOT(n < kMaxId32, kRange, "too many vectors for one index");
  return nc;
}

void check_search_params(const SearchParams& sp, bool has_vectors) {
  RABITQ_THROW_IF_NOT(sp.k >= 1, kRange, "k must be >= 1");
  RABITQ_THROW_IF_NOT(sp.nprobe >= 1, kRange, "nprobe must be >= 1");
  RABITQ_THROW_IF_NOT(!sp.rerank || has_vectors, kRange,
                      "rerank needs the raw vectors, and this index was built with storeVectors: false");
}

void check_id_width(const uint32_t* ids32, const uint64_t* ids64, bool index_ids64) {
  RABITQ_THROW_IF_NOT(!(ids64 && !index_ids64), kType, "this index has 32-bit ids: pass ids as a Uint32Array");
  RABITQ_THROW_IF_NOT(!(ids32 && index_ids64), kType, "this index has 64-bit ids: pass ids as a BigUint64Array");
}

}  // namespace rabitq
