#include "scanner.h"

#include <algorithm>
#include <cstring>
#include <limits>

namespace rabitq {

namespace {
constexpr size_t kCoarseBlock = 16;  // queries per blocked coarse step (batch_scanner.cc)
constexpr float kInf = std::numeric_limits<float>::infinity();
// Four lanes (SSE2 / NEON, both baseline) for select_nearest's filter.
using Float4 = float __attribute__((vector_size(16)));
using Int4 = int32_t __attribute__((vector_size(16)));

// The largest lower bound a vector of the next block may have and still
// matter: with re-ranking the k-th upper bound, or the exact k-th distance
// when smaller; without, the k-th result so far. Infinity while unfilled.
inline float scan_threshold(const QueryState& q, bool rerank) {
  float threshold = rerank && q.upper.full() ? q.upper.worst() : kInf;
  if (q.top.full()) threshold = std::min(threshold, q.top.worst());
  return threshold;
}
}  // namespace

void select_nearest(const float* d, size_t n, size_t m, std::vector<std::pair<float, uint32_t>>& out) {
  out.clear();
  m = std::min(m, n);
  if (m == 0) return;
  constexpr size_t kMaxSample = 256;
  constexpr size_t kSmallM = 16;
  if (m <= kSmallM && n >= 64) {
    // Few probes (small nprobe, small indexes): the m best so far in a sorted
    // array, and blocks of 8 skipped at once when none beats the m-th. The
    // sample-and-select path below cost ~4 us of a 25 us query at nprobe 1
    // over 1,265 centroids, this one 0.5 us; past m = 16 the insertions cost
    // more than it saves (measured on 1,265 and 4,096 distances).
    std::pair<float, uint32_t> best[kSmallM];
    size_t cnt = 0;
    float worst = kInf;  // the m-th smallest so far once cnt == m
    // Strictly smaller: with increasing indexes an equal distance never
    // displaces an earlier index, the (distance, index) order asked for.
    const auto offer = [&](float v, uint32_t j) {
      if (cnt == m ? !(v < worst) : v != v) return;  // (NaN never enters, as on the other paths)
      size_t pos = cnt < m ? cnt++ : m - 1;
      while (pos > 0 && v < best[pos - 1].first) {
        best[pos] = best[pos - 1];
        --pos;
      }
      best[pos] = {v, j};
      if (cnt == m) worst = best[m - 1].first;
    };
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      if (cnt == m) {
        Float4 a, b;
        std::memcpy(&a, d + i, sizeof a);
        std::memcpy(&b, d + i + 4, sizeof b);
        const Float4 wv = {worst, worst, worst, worst};
        const Int4 pass = (a < wv) | (b < wv);
        uint64_t lanes[2];
        std::memcpy(lanes, &pass, sizeof lanes);
        if ((lanes[0] | lanes[1]) == 0) continue;
      }
      for (size_t j = i; j < i + 8; ++j) offer(d[j], static_cast<uint32_t>(j));
    }
    for (; i < n; ++i) offer(d[i], static_cast<uint32_t>(i));
    // (fewer than m only with NaN distances: the full selection decides)
    if (cnt == m) {
      out.assign(best, best + m);
      return;
    }
  }
  if (n >= 512 && m * 16 <= n) {
    // The sample's r-th smallest, r about twice the expected rank of the
    // m-th nearest: usually a few times m values pass; if fewer than m do,
    // the full selection below runs instead (same result, only slower).
    // The r + 1 smallest samples kept sorted (r <= 35): most samples fail
    // the first comparison, where nth_element over all of them cost ~3 us of
    // mispredicted partitioning. (A NaN sample is skipped.)
    const size_t ns = std::min(kMaxSample, n / 16), stride = n / ns;
    const size_t r = std::min({ns - 1, 2 * m * ns / n + 3, size_t(63)});
    float kept[64];
    size_t cnt = 0;
    for (size_t i = 0; i < ns; ++i) {
      const float v = d[i * stride];
      if (cnt == r + 1 ? !(v < kept[r]) : v != v) continue;
      size_t pos = cnt <= r ? cnt++ : r;
      while (pos > 0 && v < kept[pos - 1]) {
        kept[pos] = kept[pos - 1];
        --pos;
      }
      kept[pos] = v;
    }
    const float t = cnt == r + 1 ? kept[r] : -kInf;  // (-inf: nothing passes, the full selection decides)
    // Only ~2m of the n pass: the SIMD levels find them without a branch
    // per value (Kernels::indices_below), the positions ascending as a
    // plain loop would give them. This pass cost ~10 us of 4,096 distances
    // with blocks of 8 tested at once and a branch per value after.
    thread_local std::vector<uint32_t> passed;
    thread_local std::vector<uint64_t> keys;
    if (passed.size() < n + 16) passed.resize(n + 16);
    const size_t np = active_kernels().indices_below(d, n, t, passed.data());
    if (np >= m) {
      // (distance, index) as one integer, so the selection and the sort
      // compare integers instead of pairs of a float and an index: the
      // float's bits made monotonic (negatives flipped; -0 counted as +0,
      // as the float comparison does), then the index.
      keys.resize(np);
      for (size_t i = 0; i < np; ++i) {
        const float v = d[passed[i]] + 0.f;  // -0 -> +0
        uint32_t u;
        std::memcpy(&u, &v, sizeof u);
        u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
        keys[i] = static_cast<uint64_t>(u) << 32 | passed[i];
      }
      if (np > m)
        std::nth_element(keys.begin(), keys.begin() + static_cast<long>(m - 1), keys.begin() + static_cast<long>(np));
      std::sort(keys.begin(), keys.begin() + static_cast<long>(m));
      out.resize(m);
      for (size_t i = 0; i < m; ++i) {
        const uint32_t idx = static_cast<uint32_t>(keys[i]);
        out[i] = {d[idx], idx};
      }
      return;
    }
    out.clear();
  }
  out.resize(n);
  for (size_t i = 0; i < n; ++i) out[i] = {d[i], static_cast<uint32_t>(i)};
  std::partial_sort(out.begin(), out.begin() + static_cast<long>(m), out.end());
  out.resize(m);
}

void SearchScratch::ensure(const IvfScanner& scanner) {
  qq.ensure(scanner.quantizer());
  if (qnormed.size() < scanner.dim()) qnormed.resize(scanner.dim());
  if (coarse.size() < scanner.num_clusters()) coarse.resize(scanner.num_clusters());
  if (tile.size() < 16 * kCoarseBlock) tile.resize(16 * kCoarseBlock);
}

SearchScratch& IvfScanner::scratch() const {
  thread_local SearchScratch s;
  s.ensure(*this);
  return s;
}

// The order_len nearest centroids into s.probe, nearest first.
void IvfScanner::probe_order(SearchScratch& s, const float* coarse, size_t order_len) const {
  select_nearest(coarse, store_.num_clusters(), order_len, s.probe);
}

// A query's state before its first cluster; prepared: the metric's form of it.
void IvfScanner::begin_state(QueryState& q, QuantizedQuery& qq, const float* prepared, size_t k) const {
  q.query = prepared;
  q.query_norm2 = space_.query_norm2(active_kernels(), prepared);
  quantizer_.begin_query(qq, prepared);
  q.top.reset(k);
  q.upper.reset(k);
  q.cands.clear();
  q.st = SearchStats();
  q.st.queries = 1;
}

// Without re-ranking the estimates are the results. With multi-bit codes, a
// vector whose 1-bit lower bound beats the k-th result so far gets the
// multi-bit estimate, and that is what enters the top k.
// `passed`: the block's vectors whose lower bound was <= the k-th result
// when the block was estimated (scan_threshold()); each is checked again
// against the k-th result of the moment, which only tightens.
inline void IvfScanner::keep_estimates(QueryState& q, const QuantizedQuery& qq, const ClusterView& cl, size_t b0,
                                       size_t nb, uint32_t passed, const Filter* filter, float epsilon,
                                       const float* est, const float* lower) const {
  if (cl.ex_codes == nullptr) {
    for (size_t j = 0; j < nb; ++j) {
      const int64_t id = cl.id(b0 + j);
      if (filter && !filter->allows(static_cast<uint64_t>(id))) continue;
      q.top.push(est[j], id);
    }
    return;
  }
  for (; passed != 0; passed &= passed - 1) {
    const size_t j = static_cast<size_t>(__builtin_ctz(passed));
    if (q.top.full() && lower[j] >= q.top.worst()) continue;
    const size_t local = b0 + j;
    const int64_t id = cl.id(local);
    if (filter && !filter->allows(static_cast<uint64_t>(id))) continue;
    q.st.ex_estimated++;
    const ExEstimate e = quantizer_.estimate_ex(qq, cl.codes, cl.count, local, cl.ex_codes + local * cl.ex_bytes,
                                                cl.factors[local], cl.ex_factors[local], epsilon);
    q.top.push(e.distance, id);
  }
}

// Keeps the vectors of one block whose lower bound is under the threshold
// (the k-th upper bound, or the exact k-th distance when smaller).
// With multi-bit codes, a vector that passes gets the multi-bit estimate
// first, and its (much tighter) lower bound and upper bound take the place
// of the 1-bit ones.
// `passed`: the block's vectors whose lower bound was <= `threshold`
// (scan_threshold()) when it was estimated; the threshold tightens as
// candidates come in.
// est / lower: the block's 1-bit estimates and lower bounds.
inline void IvfScanner::collect_candidates(QueryState& q, const QuantizedQuery& qq, const ClusterView& cl, size_t c,
                                           size_t b0, uint32_t passed, float threshold, const Filter* filter,
                                           float epsilon, const float* est, const float* lower) const {
  for (; passed != 0; passed &= passed - 1) {
    const size_t j = static_cast<size_t>(__builtin_ctz(passed));
    float lo = lower[j];
    if (lo <= threshold) {  // <=: see rerank()
      const uint32_t local = static_cast<uint32_t>(b0 + j);
      if (filter && !filter->allows(static_cast<uint64_t>(cl.id(local)))) continue;
      float e = est[j];
      if (cl.ex_codes != nullptr) {
        q.st.ex_estimated++;
        const ExEstimate x = quantizer_.estimate_ex(qq, cl.codes, cl.count, local, cl.ex_codes + local * cl.ex_bytes,
                                                    cl.factors[local], cl.ex_factors[local], epsilon);
        e = x.distance;
        lo = with_roundoff(x.distance - x.bound, x.distance, qq.qnorm2);
        if (!(lo <= threshold)) continue;
      }
      q.cands.push_back({lo, local});
      // Twice the bound above the estimate: the threshold only filters
      // candidates (re-ranking still stops at the exact k-th distance),
      // and a too-small threshold would silently drop true neighbours.
      // Written e + 2(e - lo), not 3e - 2lo: with a zero bound (lo == e)
      // it is e exactly, while 3e - 2lo could round below lo and the
      // re-rank would drop the vector (fewer than k results).
      q.upper.push(e + 2.f * (e - lo), static_cast<int64_t>(c) << 32 | local);
      if (q.upper.full()) threshold = std::min(threshold, q.upper.worst());
    }
  }
}

// Re-ranks the pending candidates of one cluster in rounds: pick the next few
// with the smallest lower bounds (nth_element, linear), prefetch their
// vectors so the memory loads overlap, score them, then drop every candidate
// whose lower bound no longer beats the k-th exact distance. Called after
// each probed cluster, so the exact k-th distance tightens the scan early.
void IvfScanner::rerank(QueryState& q, const ClusterView& cl, size_t k) const {
  const Kernels& kern = active_kernels();
  const size_t dim = space_.dim();
  const size_t vec_bytes = dim * sizeof(float);
  auto& cands = q.cands;
  auto& top = q.top;
  const float upper = q.upper.full() ? q.upper.worst() : kInf;
  size_t m = 0;
  // <=, not <: a vector whose bound is zero (it equals its centroid, or
  // epsilon is 0, or its distance is so far above its residual that the
  // bound vanishes in float) has lower == estimate == its own upper bound,
  // and may be the k-th upper bound itself; < dropped it, and such a search
  // came back with fewer than k results (ids -1) while k vectors existed.
  for (auto& e : cands)
    if (e.first <= upper) cands[m++] = e;
  q.st.candidates += m;
  const size_t round = std::max<size_t>(2 * k, 16);
  size_t done = 0;
  while (done < m) {
    if (top.full()) {
      const float w = top.worst();
      size_t keep = done;
      for (size_t i = done; i < m; ++i)
        if (cands[i].first < w) cands[keep++] = cands[i];
      m = keep;
      if (done >= m) break;
    }
    size_t end = std::min(m, done + round);
    if (end < m)
      std::nth_element(cands.begin() + static_cast<long>(done), cands.begin() + static_cast<long>(end),
                       cands.begin() + static_cast<long>(m));
    std::sort(cands.begin() + static_cast<long>(done), cands.begin() + static_cast<long>(end));
    for (size_t i = done; i < end; ++i) {
      const char* v = reinterpret_cast<const char*>(cl.vectors + static_cast<size_t>(cands[i].second) * dim);
      for (size_t off = 0; off < vec_bytes && off < 512; off += 64) __builtin_prefetch(v + off);
    }
    for (size_t i = done; i < end; ++i) {
      if (top.full() && cands[i].first >= top.worst()) {
        m = i;  // a sorted round: nothing after this can enter either
        break;
      }
      const size_t local = cands[i].second;
      q.st.reranked++;
      top.push(space_.exact(kern, q.query, cl.vectors + local * dim, q.query_norm2), cl.id(local));
    }
    done = end;
  }
  cands.clear();
}

// A cluster is scanned in two passes. The first estimates every block
// against the threshold of the cluster's start (one kernel call for the
// full blocks, Kernels::scan_blocks); the second takes the vectors that
// passed, block by block, against the threshold of the moment, which only
// tightens: the first pass's masks are supersets of what a single pass would
// have tested, every vector is tested again, so the results and counters are
// those of one pass. With multi-bit codes a candidate's multi-bit estimate
// reads its ex code and ex factors, away from the 1-bit codes just scanned:
// ~2/3 of the multi-bit inner product's time went to waiting for that load,
// so between the passes the ex data of the vectors that passed is prefetched.
void IvfScanner::scan_cluster(QuantizedQuery& qq, QueryState& q, size_t c, const SearchParams& sp) const {
  const ClusterView cl = store_.view(c);
  q.st.clusters_probed++;
  if (cl.count == 0) return;
  quantizer_.prepare_cluster(qq, c, sp.bitplane);
  const EstimateParams ep = quantizer_.estimate_params(qq, sp.epsilon);
  q.st.codes_scanned += cl.count;
  const size_t nblocks = (cl.count + kFastScanBlock - 1) / kFastScanBlock;
  if (q.cl_est.size() < nblocks * kFastScanBlock) {
    q.cl_est.resize(nblocks * kFastScanBlock);
    q.cl_lower.resize(nblocks * kFastScanBlock);
  }
  if (q.cl_pass.size() < nblocks) q.cl_pass.resize(nblocks);
  quantizer_.estimate_cluster(qq, cl.codes, cl.count, cl.factors, sp.bitplane, ep, scan_threshold(q, sp.rerank),
                              q.cl_est.data(), q.cl_lower.data(), q.cl_pass.data());
  if (cl.ex_codes != nullptr) {
    const size_t ex_lines = std::min<size_t>((cl.ex_bytes + 63) / 64, 16);
    for (size_t b = 0; b < nblocks; ++b) {
      for (uint32_t m = q.cl_pass[b]; m != 0; m &= m - 1) {
        const size_t local = b * kFastScanBlock + static_cast<size_t>(__builtin_ctz(m));
        const char* ex = reinterpret_cast<const char*>(cl.ex_codes + local * cl.ex_bytes);
        for (size_t l = 0; l < ex_lines; ++l) __builtin_prefetch(ex + 64 * l);
        __builtin_prefetch(cl.ex_factors + local);
      }
    }
  }
  const float* est = q.cl_est.data();
  const float* lower = q.cl_lower.data();
  for (size_t b = 0; b < nblocks; ++b) {
    const size_t b0 = b * kFastScanBlock;
    const size_t nb = std::min(kFastScanBlock, cl.count - b0);
    if (sp.rerank) {
      collect_candidates(q, qq, cl, c, b0, q.cl_pass[b], scan_threshold(q, true), sp.filter, sp.epsilon, est + b0,
                         lower + b0);
    } else {
      // Until the top k is full every vector enters, a NaN bound included.
      const uint32_t passed = q.top.full() ? q.cl_pass[b] : nb == 32 ? ~uint32_t{0} : (uint32_t{1} << nb) - 1;
      keep_estimates(q, qq, cl, b0, nb, passed, sp.filter, sp.epsilon, est + b0, lower + b0);
    }
  }
  if (sp.rerank) rerank(q, cl, sp.k);
}

// k results, best first; missing ones are id -1 at the metric's worst distance.
void IvfScanner::finish(QueryState& q, size_t k, int64_t* ids, float* dists) const {
  const auto& h = q.top.sorted();
  for (size_t i = 0; i < k; ++i) {
    if (i < h.size()) {
      ids[i] = h[i].second;
      dists[i] = space_.to_metric(h[i].first, q.query_norm2);
    } else {
      ids[i] = -1;
      dists[i] = space_.missing_distance();
    }
  }
}

// One query scans its clusters from memory, not cache: a cluster's codes
// and factors are a few KB each, so the hardware prefetcher only starts
// streaming them after the first misses of every cluster. Asking for the
// start of the next cluster's rows while this one is scanned hides that.
void IvfScanner::prefetch_cluster(size_t c) const {
  const ClusterView cl = store_.view(c);
  constexpr size_t kLines = 16;  // 1 KB of each column: the prefetcher follows on
  const size_t code_bytes = std::min(cl.count * quantizer_.layout().bytes_per_code(), kLines * 64);
  const size_t factor_bytes = std::min(cl.count * sizeof(Factor), kLines * 64);
  const char* codes = reinterpret_cast<const char*>(cl.codes);
  const char* factors = reinterpret_cast<const char*>(cl.factors);
  for (size_t off = 0; off < code_bytes; off += 64) __builtin_prefetch(codes + off);
  for (size_t off = 0; off < factor_bytes; off += 64) __builtin_prefetch(factors + off);
}

void IvfScanner::search(SearchScratch& s, const float* query, const float* coarse, const SearchParams& sp, int64_t* ids,
                        float* dists, SearchStats* stats) const {
  const size_t nc = store_.num_clusters();
  query = space_.prepare_query(query, s.qnormed.data());
  if (coarse == nullptr) {
    tiles_.partial_distances(query, 1, s.coarse.data(), s.tile.data(), space_.probe_by_ip());
    coarse = s.coarse.data();
  }
  // With a filter every cluster is ordered: the scan goes on past nprobe
  // until k allowed vectors were found, so a selective filter still returns k.
  const size_t nprobe = std::min(sp.nprobe, nc);
  probe_order(s, coarse, sp.filter ? nc : nprobe);

  QueryState& q = s.q;
  begin_state(q, s.qq, query, sp.k);
  for (size_t pi = 0; pi < s.probe.size(); ++pi) {
    if (pi >= nprobe && q.top.full()) break;
    if (pi + 1 < s.probe.size()) prefetch_cluster(s.probe[pi + 1].second);
    scan_cluster(s.qq, q, s.probe[pi].second, sp);
  }
  finish(q, sp.k, ids, dists);
  if (stats) stats->add(q.st);
}

void IvfScanner::estimate_all(const float* query, float* estimates, float* bounds, bool bitplane) const {
  SearchScratch& s = scratch();
  query = space_.prepare_query(query, s.qnormed.data());
  quantizer_.begin_query(s.qq, query);
  for (size_t c = 0; c < store_.num_clusters(); ++c) {
    const ClusterView cl = store_.view(c);
    if (cl.count == 0) continue;
    quantizer_.prepare_cluster(s.qq, c, bitplane);
    const EstimateParams ep = quantizer_.estimate_params(s.qq, 0.f);
    for (size_t b0 = 0; b0 < cl.count; b0 += kFastScanBlock) {
      const size_t nb = std::min(kFastScanBlock, cl.count - b0);
      quantizer_.estimate_block(s.qq, cl.codes, cl.count, cl.factors, b0, nb, bitplane, ep, kInf);
      for (size_t j = 0; j < nb; ++j) {
        const int64_t id = cl.id(b0 + j);
        estimates[id] = s.qq.est[j];
        bounds[id] = quantizer_.error_bound(s.qq, cl.factors[b0 + j]);
      }
    }
  }
}

}  // namespace rabitq
