// The cluster-major batch scan (IvfScanner::search_batch). The queries are
// split into groups, one pool task each. For a group: the coarse step in
// blocks of 16 queries, every query's probe list, then each query scans its
// nearest clusters on its own (as search() does, so its thresholds tighten
// early), then the rest of the probe lists are inverted (cluster -> the
// queries probing it) and each cluster is visited once, its codes, factors
// and raw vectors scanned and re-ranked for all its queries while they are
// in cache. The per-(query, cluster) work is scan_cluster() on that query's
// own QuantizedQuery and QueryState, the same code search() runs.
#include <algorithm>

#include "scanner.h"

namespace rabitq {

namespace {
constexpr size_t kCoarseBlock = 16;  // queries per blocked coarse step (CentroidTiles)
// Clusters each query scans alone, nearest first, before the cluster-major
// pass. Measured on sift1m-cv (nprobe 48): without them the first clusters a
// query sees are arbitrary ones of its list and it re-ranks ~2x more.
constexpr size_t kWarmProbes = 2;
// Per-query state a group may keep (about L2-sized): more queries per group
// share more clusters, but their states must stay cached.
constexpr size_t kGroupBytes = size_t(2) << 20;
}  // namespace

void IvfScanner::search_batch(const float* queries, size_t nq, const SearchParams& sp, int64_t* ids, float* dists,
                              SearchStats* total, SearchStats* per_query, ThreadPool& pool, size_t threads) const {
  if (nq == 0) return;
  const size_t dim = space_.dim(), k = sp.k;
  // QuantizedQuery (~4 buffers of padded_dim floats and bytes) + QueryState.
  const size_t query_bytes = quantizer_.padded_dim() * 16 + 64 * k + 1024;
  const size_t group_max = std::max(kCoarseBlock, kGroupBytes / query_bytes);
  // Equal groups, as many as a multiple of the workers: 2,000 queries on two
  // threads as groups of 565 (the cap) left one thread a 305-query group and
  // then idle, ~12% of the run (1.77x one thread instead of ~2x).
  const size_t workers = pool.slots_for(nq, threads);
  size_t groups = (nq + group_max - 1) / group_max;
  groups = std::min(nq, (groups + workers - 1) / workers * workers);
  const size_t group = (nq + groups - 1) / groups;
  groups = (nq + group - 1) / group;
  std::vector<SearchStats> slot_stats(pool.slots_for(groups, threads));
  pool.parallel_for(groups, threads, [&](size_t g, size_t slot) {
    thread_local BatchScratch b;
    const size_t q0 = g * group, n = std::min(group, nq - q0);
    search_group(b, queries + q0 * dim, n, sp, ids + q0 * k, dists + q0 * k, &slot_stats[slot],
                 per_query ? per_query + q0 : nullptr);
  });
  if (total)
    for (auto& st : slot_stats) total->add(st);
}

void IvfScanner::search_group(BatchScratch& b, const float* queries, size_t nq, const SearchParams& sp, int64_t* ids,
                              float* dists, SearchStats* total, SearchStats* per_query) const {
  const size_t dim = space_.dim(), nc = store_.num_clusters(), k = sp.k;
  const size_t nprobe = std::min(sp.nprobe, nc);
  // Queries in the metric's form, contiguous for the blocked coarse step.
  const float* prepared = queries;
  if (space_.metric() == Metric::kCosine) {
    if (b.qbuf.size() < nq * dim) b.qbuf.resize(nq * dim);
    for (size_t i = 0; i < nq; ++i) space_.prepare_query(queries + i * dim, b.qbuf.data() + i * dim);
    prepared = b.qbuf.data();
  }
  if (b.coarse.size() < kCoarseBlock * nc) b.coarse.resize(kCoarseBlock * nc);
  if (b.tile.size() < 16 * kCoarseBlock) b.tile.resize(16 * kCoarseBlock);
  if (b.probes.size() < nq * nprobe) b.probes.resize(nq * nprobe);
  // With a filter a query may scan past nprobe until it has k allowed
  // vectors: those take search() on the blocked coarse distances.
  SearchScratch* single = sp.filter ? &scratch() : nullptr;
  for (size_t q0 = 0; q0 < nq; q0 += kCoarseBlock) {
    const size_t np = std::min(kCoarseBlock, nq - q0);
    tiles_.partial_distances(prepared + q0 * dim, np, b.coarse.data(), b.tile.data(), space_.probe_by_ip());
    for (size_t i = 0; i < np; ++i) {
      const size_t qi = q0 + i;
      const float* coarse = b.coarse.data() + i * nc;
      if (single) {
        SearchStats st;
        search(*single, queries + qi * dim, coarse, sp, ids + qi * k, dists + qi * k, &st);
        total->add(st);
        if (per_query) per_query[qi] = st;
        continue;
      }
      select_nearest(coarse, nc, nprobe, b.sel);
      uint32_t* pl = b.probes.data() + qi * nprobe;
      for (size_t pi = 0; pi < nprobe; ++pi) pl[pi] = b.sel[pi].second;
    }
  }
  if (single) return;

  if (b.qq.size() < nq) b.qq.resize(nq);
  if (b.q.size() < nq) b.q.resize(nq);
  const size_t warm = std::min(kWarmProbes, nprobe);
  for (size_t qi = 0; qi < nq; ++qi) {
    b.qq[qi].ensure(quantizer_);
    begin_state(b.q[qi], b.qq[qi], prepared + qi * dim, k);
    for (size_t pi = 0; pi < warm; ++pi) scan_cluster(b.qq[qi], b.q[qi], b.probes[qi * nprobe + pi], sp);
  }
  // The rest of the probe lists by cluster (a counting sort; each cluster's
  // queries in query order): start[c] .. start[c + 1] in work.
  auto& start = b.cluster_start;
  start.assign(nc + 2, 0);
  for (size_t qi = 0; qi < nq; ++qi)
    for (size_t pi = warm; pi < nprobe; ++pi) start[b.probes[qi * nprobe + pi] + 2]++;
  for (size_t c = 2; c < nc + 2; ++c) start[c] += start[c - 1];
  if (b.work.size() < nq * (nprobe - warm)) b.work.resize(nq * (nprobe - warm));
  for (size_t qi = 0; qi < nq; ++qi)
    for (size_t pi = warm; pi < nprobe; ++pi)
      b.work[start[b.probes[qi * nprobe + pi] + 1]++] = static_cast<uint32_t>(qi);
  for (size_t c = 0; c < nc; ++c)
    for (size_t j = start[c]; j < start[c + 1]; ++j) scan_cluster(b.qq[b.work[j]], b.q[b.work[j]], c, sp);

  for (size_t qi = 0; qi < nq; ++qi) {
    finish(b.q[qi], k, ids + qi * k, dists + qi * k);
    total->add(b.q[qi].st);
    if (per_query) per_query[qi] = b.q[qi].st;
  }
}

}  // namespace rabitq
