// What a search takes (SearchParams) and what it counts (SearchStats).
#pragma once
#include <cstddef>
#include <cstdint>

#include "filter.h"

namespace rabitq {

struct SearchParams {
  size_t k = 10;
  size_t nprobe = 16;
  bool rerank = true;
  float epsilon = 1.9f;   // multiplier of the error bound
  bool bitplane = false;  // reference estimator path (same estimates as FastScan)
  const Filter* filter = nullptr;
};

struct SearchStats {
  uint64_t queries = 0;
  uint64_t clusters_probed = 0;
  uint64_t codes_scanned = 0;
  uint64_t reranked = 0;
  uint64_t ex_estimated = 0;  // multi-bit estimates (bits > 1): vectors whose 1-bit lower bound passed
  uint64_t candidates = 0;    // vectors kept for possible re-ranking (lower bound under the threshold)
  void add(const SearchStats& o) {
    queries += o.queries;
    clusters_probed += o.clusters_probed;
    codes_scanned += o.codes_scanned;
    reranked += o.reranked;
    ex_estimated += o.ex_estimated;
    candidates += o.candidates;
  }
};

}  // namespace rabitq
