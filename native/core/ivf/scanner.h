// The IVF search loop (the index's InvertedListScanner): pick the clusters
// to probe, estimate every code of each with the quantizer, keep the
// vectors whose lower bound may still enter the top k, re-rank those
// exactly, write the results. Read-only over the index's parts: the caller
// holds the index's shared lock.
//
// Pieces: probe_order() -> scan_cluster() (the quantizer's estimate_cluster()
// over all its codes, then keep_estimates() or collect_candidates() per
// block of 32, which give the vectors the 1-bit bound keeps their multi-bit
// estimate when the index has one) -> rerank() -> finish().
// The cluster-major batch scan (batch_scanner.cc) runs the same pieces with
// one QueryState per query instead of the scratch's single one.
#pragma once
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "../kmeans.h"
#include "../metric.h"
#include "../quantizer.h"
#include "../search_params.h"
#include "../thread_pool.h"
#include "../topk.h"
#include "cluster_store.h"

namespace rabitq {

class IvfScanner;

// One query's search state.
struct QueryState {
  const float* query = nullptr;  // prepared (normalized under cosine)
  float query_norm2 = 0;         // the metric's query term (metric.h)
  TopK<int64_t> top;             // exact (or estimated) results so far
  // Re-ranking is deferred: while scanning, keep every vector whose lower
  // bound is below the k-th smallest upper bound seen so far (no vector above
  // it can be in the top k; the upper bounds use twice the error width), then
  // re-rank those in ascending lower-bound order and stop at the first lower
  // bound above the exact k-th distance. This re-ranks far fewer vectors than
  // deciding during the scan, when the top k is still poor.
  TopK<int64_t> upper;
  std::vector<std::pair<float, uint32_t>> cands;  // (lower bound, position) in the current cluster
  // The current cluster's 1-bit estimates, lower bounds and per-block masks
  // (scan_cluster()'s first pass; grown to the largest cluster seen, never shrunk).
  std::vector<float> cl_est, cl_lower;
  std::vector<uint32_t> cl_pass;
  SearchStats st;
};

// The m smallest of d[0..n) as (distance, index) pairs, ascending by
// distance then index (the same list a bounded heap would keep), into out.
// A threshold from a sample, one filtering pass, then a sort of the few
// survivors: much cheaper than a heap over all n when m << n.
void select_nearest(const float* d, size_t n, size_t m, std::vector<std::pair<float, uint32_t>>& out);

// Per-thread buffers, reused across queries (and indexes).
struct SearchScratch {
  QuantizedQuery qq;
  QueryState q;
  std::vector<std::pair<float, uint32_t>> probe;  // clusters to probe, nearest first
  std::vector<float> coarse, tile, qnormed;
  void ensure(const IvfScanner& scanner);
};

// Per-thread buffers of the cluster-major batch scan (batch_scanner.cc).
struct BatchScratch {
  std::vector<QuantizedQuery> qq;  // one per query of the group
  std::vector<QueryState> q;
  std::vector<float> qbuf, coarse, tile;
  std::vector<std::pair<float, uint32_t>> sel;
  std::vector<uint32_t> probes;               // group size x nprobe, nearest first
  std::vector<uint32_t> cluster_start, work;  // inverted probe lists: cluster -> queries
};

class IvfScanner {
 public:
  IvfScanner(const MetricSpace& space, const RabitqQuantizer& quantizer, const ClusterStore& store,
             const CentroidTiles& tiles)
      : space_(space), quantizer_(quantizer), store_(store), tiles_(tiles) {}

  // This thread's scratch, sized for this index.
  SearchScratch& scratch() const;
  // One query; coarse: its centroid distances, or null to compute them.
  void search(SearchScratch& s, const float* query, const float* coarse, const SearchParams& sp, int64_t* ids,
              float* dists, SearchStats* stats) const;
  // nq queries on the pool, blocks of queries sharing the coarse step.
  void search_batch(const float* queries, size_t nq, const SearchParams& sp, int64_t* ids, float* dists,
                    SearchStats* total, SearchStats* per_query, ThreadPool& pool, size_t threads) const;
  // Estimate and bound of every vector, indexed by id (ids checked by the caller).
  void estimate_all(const float* query, float* estimates, float* bounds, bool bitplane) const;

  size_t dim() const { return space_.dim(); }
  size_t num_clusters() const { return store_.num_clusters(); }
  const RabitqQuantizer& quantizer() const { return quantizer_; }

 private:
  void probe_order(SearchScratch& s, const float* coarse, size_t order_len) const;
  void begin_state(QueryState& q, QuantizedQuery& qq, const float* prepared, size_t k) const;
  void search_group(BatchScratch& b, const float* queries, size_t nq, const SearchParams& sp, int64_t* ids,
                    float* dists, SearchStats* total, SearchStats* per_query) const;
  void scan_cluster(QuantizedQuery& qq, QueryState& q, size_t c, const SearchParams& sp) const;
  void prefetch_cluster(size_t c) const;
  void keep_estimates(QueryState& q, const QuantizedQuery& qq, const ClusterView& cl, size_t b0, size_t nb,
                      uint32_t passed, const Filter* filter, float epsilon, const float* est, const float* lower) const;
  void collect_candidates(QueryState& q, const QuantizedQuery& qq, const ClusterView& cl, size_t c, size_t b0,
                          uint32_t passed, float threshold, const Filter* filter, float epsilon, const float* est,
                          const float* lower) const;
  void rerank(QueryState& q, const ClusterView& cl, size_t k) const;
  void finish(QueryState& q, size_t k, int64_t* ids, float* dists) const;

  const MetricSpace& space_;
  const RabitqQuantizer& quantizer_;
  const ClusterStore& store_;
  const CentroidTiles& tiles_;
};

}  // namespace rabitq
