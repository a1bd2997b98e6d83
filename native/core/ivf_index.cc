#include "ivf_index.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>

#include "common.h"
#include "kernels/kernels.h"

namespace rabitq {

namespace {

constexpr uint32_t kQueryBits = 4;
constexpr uint32_t kQueryMax = (1u << kQueryBits) - 1;
constexpr size_t kQueryBlock = 16;  // queries per blocked coarse step in batches
constexpr size_t kRoundingRows = 64;  // rows of randomized-rounding offsets
constexpr double kErrorCalibration = 1.2;

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Bounded max-heap of (distance, id): the current top k, worst on top.
// Ties are broken by id so results do not depend on scan order.
struct TopK {
  std::vector<std::pair<float, int32_t>> h;
  size_t k = 0;
  void reset(size_t kk) {
    k = kk;
    h.clear();
    if (h.capacity() < kk) h.reserve(kk);
  }
  bool full() const { return h.size() >= k; }
  float worst() const { return h.front().first; }
  void push(float d, int32_t id) {
    std::pair<float, int32_t> e{d, id};
    if (h.size() < k) {
      h.push_back(e);
      std::push_heap(h.begin(), h.end());
    } else if (e < h.front()) {
      std::pop_heap(h.begin(), h.end());
      h.back() = e;
      std::push_heap(h.begin(), h.end());
    }
  }
};

// Mixes the query's 32-bit words: picks the rounding-offset rows.
uint64_t hash_query(const float* q, size_t dim) {
  uint64_t h = 1469598103934665603ULL;
  const uint32_t* w = reinterpret_cast<const uint32_t*>(q);
  for (size_t i = 0; i < dim; ++i) h = (h ^ w[i]) * 1099511628211ULL;
  return h;
}

}  // namespace

// Per-thread buffers for one query, reused across queries (and indexes).
class SearchScratch {
 public:
  std::vector<float> qrot, qres, coarse, tile, est, lower;
  std::vector<uint8_t> qu, luts, tail;
  std::vector<uint64_t> planes, code_bits;
  std::vector<std::pair<float, uint32_t>> probe, cands;
  std::vector<uint16_t> ip;
  TopK top, upper;
  // Current cluster's query terms.
  float lo = 0, delta = 0, sumq = 0, qnorm2 = 0;
  uint64_t query_hash = 0;

  void ensure(const IvfRabitqIndex& idx) {
    const size_t pd = idx.padded_dim_;
    if (qrot.size() < pd) {
      qrot.resize(pd);
      qres.resize(pd);
      qu.resize(pd);
      luts.resize(idx.npairs_ * 32);
      planes.resize(kQueryBits * idx.words_);
      code_bits.resize(idx.words_);
    }
    if (luts.size() < idx.npairs_ * 32) luts.resize(idx.npairs_ * 32);
    if (tail.size() < idx.npairs_ * 32) tail.resize(idx.npairs_ * 32);
    if (coarse.size() < idx.num_clusters_) coarse.resize(idx.num_clusters_);
    if (tile.size() < 16 * kQueryBlock) tile.resize(16 * kQueryBlock);
    if (ip.size() < kFastScanBlock) {
      ip.resize(kFastScanBlock);
      est.resize(kFastScanBlock);
      lower.resize(kFastScanBlock);
    }
  }
};

namespace {
SearchScratch& thread_scratch(const IvfRabitqIndex& idx) {
  thread_local SearchScratch s;
  s.ensure(idx);
  return s;
}
}  // namespace

IvfRabitqIndex::~IvfRabitqIndex() = default;

std::unique_ptr<IvfRabitqIndex> IvfRabitqIndex::build(const float* data, size_t n, const BuildParams& p,
                                                      ThreadPool& pool) {
  RABITQ_THROW_IF_NOT(p.dim >= 1 && p.dim <= 65536, kRange, "dim must be between 1 and 65536");
  RABITQ_THROW_IF_NOT(n >= 1, kRange, "cannot build an index from an empty set of vectors");
  size_t nc = p.num_clusters;
  if (nc == 0) nc = std::max<size_t>(1, std::min(n, static_cast<size_t>(std::lround(4.0 * std::sqrt(double(n))))));
  RABITQ_THROW_IF_NOT(nc >= 1 && nc <= n, kRange,
                      "numClusters must be between 1 and the number of vectors (" + std::to_string(n) + ")");
  RABITQ_THROW_IF_NOT(n < static_cast<size_t>(std::numeric_limits<int32_t>::max()), kRange,
                      "too many vectors for 32-bit ids");

  // Checked here, on the worker, so the JS thread never scans a large input.
  for (size_t i = 0; i < n * p.dim; ++i) {
    if (!std::isfinite(data[i])) {
      throw Error(ErrorKind::kRange, "vectors must contain only finite numbers, found " + std::to_string(data[i]) +
                                         " at row " + std::to_string(i / p.dim) + ", column " +
                                         std::to_string(i % p.dim));
    }
  }
  std::unique_ptr<IvfRabitqIndex> idx(new IvfRabitqIndex());
  IvfRabitqIndex& ix = *idx;
  const size_t dim = p.dim;
  ix.dim_ = dim;
  ix.padded_dim_ = padded_dim_for(dim);
  ix.words_ = ix.padded_dim_ / 64;
  ix.npairs_ = ix.padded_dim_ / 8;
  ix.quant_sqrt_ = std::sqrt(static_cast<float>(ix.padded_dim_) / 2.f);
  ix.n_ = n;
  ix.num_clusters_ = nc;
  ix.seed_ = p.seed;

  // 1. Train.
  auto t0 = std::chrono::steady_clock::now();
  KMeansParams kp;
  kp.num_clusters = nc;
  kp.iterations = p.kmeans_iterations;
  kp.max_points_per_cluster = p.train_points_per_cluster;
  kp.seed = p.seed;
  kp.threads = p.threads;
  if (p.progress) kp.progress = [&](size_t d, size_t t) { p.progress(0, d, t); };
  ix.centroids_ = train_kmeans(data, n, dim, kp, pool);
  ix.tiles_ = CentroidTiles(ix.centroids_.data(), nc, dim, /*half=*/getenv("NOHALF") == nullptr);
  ix.timings_.train_ms = ms_since(t0);

  // 2. Assign every vector to its nearest centroid.
  t0 = std::chrono::steady_clock::now();
  std::vector<uint32_t> labels(n);
  std::vector<float> cdist(n);
  std::function<void(size_t, size_t)> assign_progress;
  if (p.progress) assign_progress = [&](size_t d, size_t t) { p.progress(1, d, t); };
  assign_nearest(data, n, dim, ix.tiles_, labels.data(), cdist.data(), pool, p.threads, assign_progress);
  // Cluster order, and inside a cluster ascending distance to the centroid:
  // near vectors are seen first and fill the top k with good candidates.
  std::vector<uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0u);
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    if (labels[a] != labels[b]) return labels[a] < labels[b];
    if (cdist[a] != cdist[b]) return cdist[a] < cdist[b];
    return a < b;
  });
  ix.offsets_.assign(nc + 1, 0);
  for (size_t i = 0; i < n; ++i) ix.offsets_[labels[i] + 1]++;
  for (size_t c = 0; c < nc; ++c) ix.offsets_[c + 1] += ix.offsets_[c];
  ix.ids_.resize(n);
  ix.vectors_.resize(n * dim);
  for (size_t pos = 0; pos < n; ++pos) {
    ix.ids_[pos] = static_cast<int32_t>(order[pos]);
    std::memcpy(&ix.vectors_[pos * dim], data + static_cast<size_t>(order[pos]) * dim, dim * sizeof(float));
  }
  ix.timings_.assign_ms = ms_since(t0);

  // 3. Rotate and encode.
  t0 = std::chrono::steady_clock::now();
  const size_t pd = ix.padded_dim_;
  ix.rotation_ = Rotation(p.rotation, dim, pd, p.seed + 1);
  ix.rotated_centroids_.resize(nc * pd);
  ix.rotated_centroid_sums_.resize(nc);
  for (size_t c = 0; c < nc; ++c) ix.rotation_.apply(&ix.centroids_[c * dim], &ix.rotated_centroids_[c * pd]);
  {
    std::mt19937_64 rng(p.seed + 2);
    std::uniform_real_distribution<float> u(0.f, 1.f);
    ix.rounding_offsets_.resize(kRoundingRows * pd);
    for (auto& v : ix.rounding_offsets_) v = u(rng);
  }
  ix.codes_.assign(n * ix.npairs_, 0);
  ix.factors_.resize(n);
  const size_t slots = pool.slots_for(nc, p.threads);
  std::vector<std::vector<float>> scratch(slots, std::vector<float>(pd));
  std::atomic<size_t> encoded{0};
  const size_t report_every = std::max<size_t>(1, nc / 100);
  std::atomic<size_t> clusters_done{0};
  pool.parallel_for(nc, p.threads, [&](size_t c, size_t slot) {
    ix.encode_cluster(c, nullptr, scratch[slot].data());
    size_t e = encoded.fetch_add(ix.offsets_[c + 1] - ix.offsets_[c]) + (ix.offsets_[c + 1] - ix.offsets_[c]);
    size_t cd = clusters_done.fetch_add(1) + 1;
    if (p.progress && (cd % report_every == 0 || cd == nc)) p.progress(2, std::min(e, n), n);
  });
  ix.timings_.encode_ms = ms_since(t0);
  return idx;
}

void IvfRabitqIndex::encode_cluster(size_t c, const float*, float* o) {
  const size_t pd = padded_dim_;
  const float* rc = &rotated_centroids_[c * pd];
  const float sqrt_d = std::sqrt(static_cast<float>(pd));
  const size_t begin = offsets_[c], end = offsets_[c + 1];
  for (size_t pos = begin; pos < end; ++pos) {
    rotation_.apply(&vectors_[pos * dim_], o);
    double norm2 = 0, l1 = 0;
    for (size_t i = 0; i < pd; ++i) {
      o[i] -= rc[i];
      norm2 += double(o[i]) * o[i];
      l1 += std::fabs(double(o[i]));
    }
    size_t stride;
    uint8_t* block = code_block(c, pos - begin, &stride);
    const size_t lane = (pos - begin) % kFastScanBlock;
    uint32_t pop = 0;
    for (size_t pair = 0; pair < npairs_; ++pair) {
      uint8_t byte = 0;
      for (size_t t = 0; t < 8; ++t) {
        if (o[pair * 8 + t] > 0.f) {
          byte |= static_cast<uint8_t>(1u << t);
          pop++;
        }
      }
      block[pair * stride + lane] = byte;
    }
    Factor& f = factors_[pos];
    f.residual_norm_sq = static_cast<float>(norm2);
    f.popcount = static_cast<float>(pop);
    if (norm2 <= 0.0 || l1 <= 0.0) {
      f.ip_scale = 0.f;
      f.error_scale = 0.f;
      continue;
    }
    const double norm = std::sqrt(norm2);
    const double a = l1 / (norm * sqrt_d);  // <xbar, o>, in (0, 1]
    f.ip_scale = static_cast<float>(-2.0 * norm2 / l1);
    const double r = std::max(0.0, (1.0 - a * a) / (a * a));
    // The paper's bound 2 ||x-c|| sqrt((1-a^2)/a^2) / sqrt(D-1), times 1.2:
    // with the query-quantization term added at search time, the plain bound
    // held at epsilon = 1.9 for ~98.9% of (query, vector) pairs on SIFT and
    // 1.2 brings that to ~99.7% (measured in test/index.test.ts).
    f.error_scale = static_cast<float>(kErrorCalibration * 2.0 * norm * std::sqrt(r) / std::sqrt(double(pd) - 1.0));
  }
}

// Codes of a cluster: full blocks of 32 vectors (32 bytes per pair), then the
// last r < 32 vectors stored compactly (r bytes per pair), so the codes take
// exactly D/8 bytes per vector however small the clusters are.
uint8_t* IvfRabitqIndex::code_block(size_t c, size_t local, size_t* stride) {
  return const_cast<uint8_t*>(static_cast<const IvfRabitqIndex*>(this)->code_block(c, local, stride));
}

const uint8_t* IvfRabitqIndex::code_block(size_t c, size_t local, size_t* stride) const {
  const size_t count = offsets_[c + 1] - offsets_[c];
  const size_t full = count / kFastScanBlock;
  const size_t b = local / kFastScanBlock;
  const uint8_t* base = &codes_[static_cast<size_t>(offsets_[c]) * npairs_];
  *stride = b < full ? kFastScanBlock : count - full * kFastScanBlock;
  return base + b * npairs_ * kFastScanBlock;
}

// A 32-lane block for the FastScan kernel: in place for full blocks, copied
// into `scratch` (npairs_ * 32 bytes) for the compact tail.
const uint8_t* IvfRabitqIndex::scan_block(size_t c, size_t local, uint8_t* scratch) const {
  size_t stride;
  const uint8_t* block = code_block(c, local, &stride);
  if (stride == kFastScanBlock) return block;
  for (size_t p = 0; p < npairs_; ++p) std::memcpy(scratch + p * kFastScanBlock, block + p * stride, stride);
  return scratch;
}

void IvfRabitqIndex::unpack_code(size_t cluster, size_t local, uint64_t* bits) const {
  size_t stride;
  const uint8_t* block = code_block(cluster, local, &stride);
  const size_t lane = local % kFastScanBlock;
  std::memset(bits, 0, words_ * sizeof(uint64_t));
  for (size_t pair = 0; pair < npairs_; ++pair) {
    const uint64_t byte = block[pair * stride + lane];
    bits[pair / 8] |= byte << ((pair % 8) * 8);
  }
}

void IvfRabitqIndex::prepare_cluster_query(SearchScratch& s, size_t c, bool bitplane) const {
  const Kernels& k = active_kernels();
  const size_t pd = padded_dim_;
  const float* rc = &rotated_centroids_[c * pd];
  float* q = s.qres.data();
  float sum = 0.f;
  for (size_t i = 0; i < pd; ++i) {
    q[i] = s.qrot[i] - rc[i];
    sum += q[i];
  }
  s.sumq = sum;
  s.qnorm2 = k.dot(q, q, pd);
  float lo, hi;
  k.minmax(q, pd, &lo, &hi);
  const float delta = (hi - lo) / static_cast<float>(kQueryMax);
  s.lo = lo;
  s.delta = delta;
  // Randomized rounding needs offsets that vary between (query, cluster)
  // pairs: one fixed offset vector made the estimates biased by ~2% on SIFT.
  // A row of a precomputed table is picked by hashing the pair, which keeps
  // results deterministic (search == searchBatch, same seed == same results).
  uint64_t h = (s.query_hash ^ (static_cast<uint64_t>(c) * 0x9e3779b97f4a7c15ULL)) + 0x632be59bd9b4e019ULL;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
  h ^= h >> 31;
  const float* offsets = &rounding_offsets_[(h % kRoundingRows) * pd];
  k.quantize(q, pd, lo, delta > 0.f ? 1.f / delta : 0.f, offsets, kQueryMax, s.qu.data());
  // LUT of sub-space m: entry v = sum of the quantized query over the bits of v.
  const uint8_t* qu = s.qu.data();
  for (size_t m = 0; m < pd / 4; ++m) {
    uint8_t* lut = &s.luts[(m / 2) * 32 + (m % 2) * 16];
    const uint8_t* qq = qu + 4 * m;
    lut[0] = 0;
    for (unsigned v = 1; v < 16; ++v) lut[v] = static_cast<uint8_t>(lut[v & (v - 1)] + qq[__builtin_ctz(v)]);
  }
  if (bitplane) {
    std::fill(s.planes.begin(), s.planes.end(), 0);
    for (size_t i = 0; i < pd; ++i)
      for (uint32_t b = 0; b < kQueryBits; ++b)
        if ((qu[i] >> b) & 1u) s.planes[b * words_ + i / 64] |= uint64_t(1) << (i % 64);
  }
}

void IvfRabitqIndex::search_with(SearchScratch& s, const float* query, const float* coarse, const SearchParams& sp,
                                 int32_t* ids, float* dists, SearchStats* stats) const {
  const Kernels& k = active_kernels();
  if (coarse == nullptr) {
    tiles_.partial_distances(query, 1, s.coarse.data(), s.tile.data());
    coarse = s.coarse.data();
  }
  // The nprobe nearest centroids, probed nearest first. A bounded max-heap
  // touches most of the numClusters distances with one compare each.
  const size_t nprobe = std::min(sp.nprobe, num_clusters_);
  auto& probe = s.probe;
  probe.clear();
  for (size_t c = 0; c < num_clusters_; ++c) {
    const std::pair<float, uint32_t> e{coarse[c], static_cast<uint32_t>(c)};
    if (probe.size() < nprobe) {
      probe.push_back(e);
      std::push_heap(probe.begin(), probe.end());
    } else if (e < probe.front()) {
      std::pop_heap(probe.begin(), probe.end());
      probe.back() = e;
      std::push_heap(probe.begin(), probe.end());
    }
  }
  std::sort_heap(probe.begin(), probe.end());

  rotation_.apply(query, s.qrot.data());
  s.query_hash = hash_query(query, dim_);
  s.top.reset(sp.k);
  // Re-ranking is deferred: while scanning, keep every vector whose lower
  // bound is below the k-th smallest upper bound seen so far (no vector above
  // it can be in the top k; the upper bounds use twice the error width), then re-rank those in ascending lower-bound
  // order and stop at the first lower bound above the exact k-th distance.
  // This re-ranks far fewer vectors than deciding during the scan, when the
  // top k is still poor.
  s.upper.reset(sp.k);
  s.cands.clear();
  SearchStats st;
  st.queries = 1;
  const size_t vec_bytes = dim_ * sizeof(float);
  // Re-rank the pending candidates in rounds: pick the next few with the
  // smallest lower bounds (nth_element, linear), prefetch their vectors so the
  // memory loads overlap, score them, then drop every candidate whose lower
  // bound no longer beats the k-th exact distance. Called after each probed
  // cluster, so the exact k-th distance tightens the scan early.
  auto flush_candidates = [&]() {
    auto& cands = s.cands;
    const float upper = s.upper.full() ? s.upper.worst() : std::numeric_limits<float>::infinity();
    size_t m = 0;
    for (auto& e : cands)
      if (e.first < upper) cands[m++] = e;
    st.candidates += m;
    const size_t round = std::max<size_t>(2 * sp.k, 16);
    size_t done = 0;
    while (done < m) {
      if (s.top.full()) {
        const float w = s.top.worst();
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
        const char* v = reinterpret_cast<const char*>(&vectors_[static_cast<size_t>(cands[i].second) * dim_]);
        for (size_t off = 0; off < vec_bytes && off < 512; off += 64) __builtin_prefetch(v + off);
      }
      for (size_t i = done; i < end; ++i) {
        if (s.top.full() && cands[i].first >= s.top.worst()) {
          m = i;  // a sorted round: nothing after this can enter either
          break;
        }
        const size_t pos = cands[i].second;
        st.reranked++;
        s.top.push(k.l2sq(query, &vectors_[pos * dim_], dim_), ids_[pos]);
      }
      done = end;
    }
    cands.clear();
  };
  for (size_t pi = 0; pi < nprobe; ++pi) {
    const size_t c = probe[pi].second;
    const size_t begin = offsets_[c], count = offsets_[c + 1] - begin;
    st.clusters_probed++;
    if (count == 0) continue;
    prepare_cluster_query(s, c, sp.bitplane);
    const float qnorm2 = s.qnorm2;
    const float two_lo = 2.f * s.lo, two_delta = 2.f * s.delta, sumq = s.sumq;
    const float err_mul = sp.epsilon * std::sqrt(qnorm2);
    // The 4-bit query adds its own error: 2*delta*sum(b_i e_i) with rounding
    // errors e_i of variance <= 1/4, i.e. a standard deviation of at most
    // delta * sqrt(popcount) ~ delta * sqrt(D/2), scaled by |ip_scale| = -ip_scale.
    const float quant_mul = sp.epsilon * s.delta * quant_sqrt_;
    st.codes_scanned += count;
    for (size_t b0 = 0; b0 < count; b0 += kFastScanBlock) {
      const size_t nb = std::min(kFastScanBlock, count - b0);
      uint16_t* ip = s.ip.data();
      if (sp.bitplane) {
        for (size_t j = 0; j < nb; ++j) {
          unpack_code(c, b0 + j, s.code_bits.data());
          ip[j] = static_cast<uint16_t>(k.bitplane_ip(s.planes.data(), kQueryBits, s.code_bits.data(), words_));
        }
      } else {
        k.fastscan(scan_block(c, b0, s.tail.data()), s.luts.data(), npairs_, ip);
      }
      const Factor* f = &factors_[begin + b0];
      float* est = s.est.data();
      float* lower = s.lower.data();
      for (size_t j = 0; j < nb; ++j) {
        est[j] = f[j].residual_norm_sq + qnorm2 +
                 f[j].ip_scale * (two_lo * f[j].popcount + two_delta * static_cast<float>(ip[j]) - sumq);
        lower[j] = est[j] - err_mul * f[j].error_scale + quant_mul * f[j].ip_scale;
      }
      if (!sp.rerank) {
        for (size_t j = 0; j < nb; ++j) s.top.push(est[j], ids_[begin + b0 + j]);
        continue;
      }
      float threshold = s.upper.full() ? s.upper.worst() : std::numeric_limits<float>::infinity();
      if (s.top.full()) threshold = std::min(threshold, s.top.worst());
      for (size_t j = 0; j < nb; ++j) {
        if (lower[j] < threshold) {
          const uint32_t pos = static_cast<uint32_t>(begin + b0 + j);
          s.cands.push_back({lower[j], pos});
          // Twice the bound above the estimate: the threshold only filters
          // candidates (re-ranking still stops at the exact k-th distance),
          // and a too-small threshold would silently drop true neighbours.
          s.upper.push(3.f * est[j] - 2.f * lower[j], static_cast<int32_t>(pos));
          if (s.upper.full()) threshold = std::min(threshold, s.upper.worst());
        }
      }
    }
    if (sp.rerank) flush_candidates();
  }
  auto& h = s.top.h;
  std::sort(h.begin(), h.end());
  for (size_t i = 0; i < sp.k; ++i) {
    if (i < h.size()) {
      ids[i] = h[i].second;
      dists[i] = h[i].first;
    } else {
      ids[i] = -1;
      dists[i] = std::numeric_limits<float>::infinity();
    }
  }
  if (stats) stats->add(st);
}

void IvfRabitqIndex::search(const float* query, const SearchParams& sp, int32_t* ids, float* dists,
                            SearchStats* stats) const {
  RABITQ_THROW_IF_NOT(sp.k >= 1, kRange, "k must be >= 1");
  RABITQ_THROW_IF_NOT(sp.nprobe >= 1, kRange, "nprobe must be >= 1");
  SearchScratch& s = thread_scratch(*this);
  search_with(s, query, nullptr, sp, ids, dists, stats);
}

void IvfRabitqIndex::search_batch(const float* queries, size_t nq, const SearchParams& sp, int32_t* ids,
                                  float* dists, SearchStats* total, SearchStats* per_query, ThreadPool& pool,
                                  size_t threads) const {
  RABITQ_THROW_IF_NOT(sp.k >= 1, kRange, "k must be >= 1");
  RABITQ_THROW_IF_NOT(sp.nprobe >= 1, kRange, "nprobe must be >= 1");
  const size_t blocks = (nq + kQueryBlock - 1) / kQueryBlock;
  const size_t slots = pool.slots_for(blocks, threads);
  std::vector<SearchStats> slot_stats(slots);
  std::vector<std::vector<float>> coarse(slots);
  pool.parallel_for(blocks, threads, [&](size_t b, size_t slot) {
    SearchScratch& s = thread_scratch(*this);
    const size_t q0 = b * kQueryBlock;
    const size_t np = std::min(kQueryBlock, nq - q0);
    auto& cb = coarse[slot];
    cb.resize(np * num_clusters_);
    // The coarse step for the whole block at once: every centroid tile is
    // loaded once for up to 16 queries.
    tiles_.partial_distances(queries + q0 * dim_, np, cb.data(), s.tile.data());
    for (size_t i = 0; i < np; ++i) {
      const size_t q = q0 + i;
      SearchStats st;
      search_with(s, queries + q * dim_, cb.data() + i * num_clusters_, sp, ids + q * sp.k, dists + q * sp.k, &st);
      slot_stats[slot].add(st);
      if (per_query) per_query[q] = st;
    }
  });
  if (total)
    for (auto& st : slot_stats) total->add(st);
}

void IvfRabitqIndex::estimate_all(const float* query, float* estimates, float* bounds, bool bitplane) const {
  SearchScratch& s = thread_scratch(*this);
  const Kernels& k = active_kernels();
  rotation_.apply(query, s.qrot.data());
  s.query_hash = hash_query(query, dim_);
  for (size_t c = 0; c < num_clusters_; ++c) {
    const size_t begin = offsets_[c], count = offsets_[c + 1] - begin;
    if (count == 0) continue;
    prepare_cluster_query(s, c, bitplane);
    for (size_t b0 = 0; b0 < count; b0 += kFastScanBlock) {
      const size_t nb = std::min(kFastScanBlock, count - b0);
      uint16_t* ip = s.ip.data();
      if (bitplane) {
        for (size_t j = 0; j < nb; ++j) {
          unpack_code(c, b0 + j, s.code_bits.data());
          ip[j] = static_cast<uint16_t>(k.bitplane_ip(s.planes.data(), kQueryBits, s.code_bits.data(), words_));
        }
      } else {
        k.fastscan(scan_block(c, b0, s.tail.data()), s.luts.data(), npairs_, ip);
      }
      for (size_t j = 0; j < nb; ++j) {
        const size_t pos = begin + b0 + j;
        const Factor& f = factors_[pos];
        const float e = f.residual_norm_sq + s.qnorm2 +
                        f.ip_scale * (2.f * s.lo * f.popcount + 2.f * s.delta * static_cast<float>(ip[j]) - s.sumq);
        estimates[ids_[pos]] = e;
        bounds[ids_[pos]] = f.error_scale * std::sqrt(s.qnorm2) - s.delta * quant_sqrt_ * f.ip_scale;
      }
    }
  }
}

MemoryUsage IvfRabitqIndex::memory_usage() const {
  MemoryUsage m;
  m.codes = codes_.size();
  m.factors = factors_.size() * sizeof(Factor);
  m.ids = ids_.size() * sizeof(int32_t);
  m.vectors = vectors_.size() * sizeof(float);
  m.centroids = (centroids_.size() + rotated_centroids_.size() + rotated_centroid_sums_.size()) * sizeof(float) +
                tiles_.num_tiles() * 16 * (dim_ * sizeof(uint16_t) + sizeof(float));
  m.other = offsets_.size() * sizeof(uint32_t) + rounding_offsets_.size() * sizeof(float);
  return m;
}

}  // namespace rabitq
