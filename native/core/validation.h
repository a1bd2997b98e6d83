// Checks of the index's inputs that are not about a metric (metric.h checks
// rows and queries) or about ids (ivf/id_map.h). Each throws a typed Error
// naming the argument.
#pragma once
#include <cstddef>
#include <cstdint>

#include "metric.h"
#include "rotation.h"
#include "search_params.h"

namespace rabitq {

// dim, vector count, metric and rotation (dense: dim <= kMaxDenseRotationDim) of a build; returns the number of
// clusters (num_clusters, or about 4 * sqrt(n) for 0).
size_t checked_build_shape(size_t dim, size_t n, Metric metric, size_t num_clusters, RotationKind rotation);
void check_search_params(const SearchParams& sp, bool has_vectors);
// Ids passed to add() match the index's id width.
void check_id_width(const uint32_t* ids32, const uint64_t* ids64, bool index_ids64);

}  // namespace rabitq
