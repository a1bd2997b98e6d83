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
#include <unordered_set>

#include "common.h"
#include "kernels/kernels.h"
#include "persist/reader.h"

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
  std::vector<std::pair<float, int64_t>> h;
  size_t k = 0;
  void reset(size_t kk) {
    k = kk;
    h.clear();
    if (h.capacity() < kk) h.reserve(kk);
  }
  bool full() const { return h.size() >= k; }
  float worst() const { return h.front().first; }
  void push(float d, int64_t id) {
    std::pair<float, int64_t> e{d, id};
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
  std::vector<float> qrot, qres, coarse, tile, est, lower, qnormed;
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
    if (qnormed.size() < idx.dim_) qnormed.resize(idx.dim_);
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

bool Filter::allows(uint64_t id) const {
  if (bits != nullptr) return id < nbits && ((bits[id >> 3] >> (id & 7)) & 1u);
  if (sorted32 != nullptr) return id <= 0xffffffffu && std::binary_search(sorted32, sorted32 + count, uint32_t(id));
  return std::binary_search(sorted64, sorted64 + count, id);
}

namespace {

// Where the byte of (pair, local) lives in a cluster's codes: full blocks of
// 32 vectors (32 bytes per pair), then the last r < 32 vectors compactly
// (r bytes per pair), so the codes take exactly D/8 bytes per vector however
// small the clusters are.
inline size_t block_offset(size_t count, size_t local, size_t npairs, size_t* stride) {
  const size_t full = count / kFastScanBlock;
  const size_t b = local / kFastScanBlock;
  *stride = b < full ? kFastScanBlock : count - full * kFastScanBlock;
  return b * npairs * kFastScanBlock;
}

inline void put_code(uint8_t* codes, size_t count, size_t local, size_t npairs, const uint8_t* bytes) {
  size_t stride;
  uint8_t* block = codes + block_offset(count, local, npairs, &stride);
  const size_t lane = local % kFastScanBlock;
  for (size_t p = 0; p < npairs; ++p) block[p * stride + lane] = bytes[p];
}

inline void get_code(const uint8_t* codes, size_t count, size_t local, size_t npairs, uint8_t* bytes) {
  size_t stride;
  const uint8_t* block = codes + block_offset(count, local, npairs, &stride);
  const size_t lane = local % kFastScanBlock;
  for (size_t p = 0; p < npairs; ++p) bytes[p] = block[p * stride + lane];
}

constexpr uint64_t kMaxId32 = static_cast<uint64_t>(std::numeric_limits<int32_t>::max());
constexpr uint64_t kMaxId64 = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

// Finite values everywhere; under cosine, no zero rows. Names the row.
void check_rows(const float* data, size_t n, size_t dim, Metric metric, const char* what) {
  for (size_t r = 0; r < n; ++r) {
    const float* x = data + r * dim;
    double norm2 = 0;
    for (size_t i = 0; i < dim; ++i) {
      if (!std::isfinite(x[i])) {
        throw Error(ErrorKind::kRange, std::string(what) + " must contain only finite numbers, found " +
                                           std::to_string(x[i]) + " at row " + std::to_string(r) + ", column " +
                                           std::to_string(i));
      }
      norm2 += double(x[i]) * x[i];
    }
    if (metric == Metric::kCosine && norm2 == 0.0)
      throw Error(ErrorKind::kRange, std::string(what) + " row " + std::to_string(r) +
                                         " is a zero vector, which has no direction under the cosine metric");
  }
}

std::vector<float> normalized_rows(const float* data, size_t n, size_t dim) {
  std::vector<float> out(n * dim);
  for (size_t r = 0; r < n; ++r) {
    const float* x = data + r * dim;
    double norm2 = 0;
    for (size_t i = 0; i < dim; ++i) norm2 += double(x[i]) * x[i];
    // In double: 1/norm overflows a float for tiny (subnormal) rows.
    const double inv = 1.0 / std::sqrt(norm2);
    for (size_t i = 0; i < dim; ++i) out[r * dim + i] = static_cast<float>(x[i] * inv);
  }
  return out;
}

// Ids given by the caller: in range for the index's width, no duplicates.
// Returns them widened.
std::vector<uint64_t> checked_ids(const uint32_t* ids32, const uint64_t* ids64, size_t n) {
  std::vector<uint64_t> ids(n);
  const uint64_t max = ids64 ? kMaxId64 : kMaxId32;
  for (size_t i = 0; i < n; ++i) {
    ids[i] = ids64 ? ids64[i] : ids32[i];
    if (ids[i] > max)
      throw Error(ErrorKind::kRange, "ids[" + std::to_string(i) + "] = " + std::to_string(ids[i]) + " is above " +
                                         std::to_string(max) +
                                         (ids64 ? "" : " (32-bit ids must fit an Int32Array; use BigUint64Array ids)"));
  }
  std::vector<std::pair<uint64_t, size_t>> sorted(n);
  for (size_t i = 0; i < n; ++i) sorted[i] = {ids[i], i};
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 1; i < n; ++i)
    if (sorted[i].first == sorted[i - 1].first)
      throw Error(ErrorKind::kRange, "duplicate id " + std::to_string(sorted[i].first) + " at rows " +
                                         std::to_string(sorted[i - 1].second) + " and " +
                                         std::to_string(sorted[i].second));
  return ids;
}

}  // namespace

void IvfRabitqIndex::init_geometry(size_t dim) {
  dim_ = dim;
  padded_dim_ = padded_dim_for(dim);
  words_ = padded_dim_ / 64;
  npairs_ = padded_dim_ / 8;
  quant_sqrt_ = std::sqrt(static_cast<float>(padded_dim_) / 2.f);
}

std::unique_ptr<IvfRabitqIndex> IvfRabitqIndex::build(const float* data, size_t n, const BuildParams& p,
                                                      ThreadPool& pool) {
  RABITQ_THROW_IF_NOT(p.dim >= 1 && p.dim <= 65536, kRange, "dim must be between 1 and 65536");
  RABITQ_THROW_IF_NOT(n >= 1, kRange, "cannot build an index from an empty set of vectors");
  RABITQ_THROW_IF_NOT(p.metric == Metric::kL2 || p.metric == Metric::kCosine || p.metric == Metric::kInnerProduct,
                      kRange, "unknown metric");
  size_t nc = p.num_clusters;
  if (nc == 0) nc = std::max<size_t>(1, std::min(n, static_cast<size_t>(std::lround(4.0 * std::sqrt(double(n))))));
  RABITQ_THROW_IF_NOT(nc >= 1 && nc <= n, kRange,
                      "numClusters must be between 1 and the number of vectors (" + std::to_string(n) + ")");
  RABITQ_THROW_IF_NOT(n < kMaxId32, kRange, "too many vectors for one index");

  // Checked here, on the worker, so the JS thread never scans a large input.
  check_rows(data, n, p.dim, p.metric, "vectors");
  std::vector<uint64_t> ids;
  if (p.ids32 || p.ids64) ids = checked_ids(p.ids32, p.ids64, n);

  std::unique_ptr<IvfRabitqIndex> idx(new IvfRabitqIndex());
  IvfRabitqIndex& ix = *idx;
  const size_t dim = p.dim;
  ix.init_geometry(dim);
  ix.num_clusters_ = nc;
  ix.seed_ = p.seed;
  ix.metric_ = p.metric;
  ix.ids64_ = p.ids64 != nullptr;
  ix.has_vectors_ = p.store_vectors;
  std::vector<float> normalized;
  const float* src = data;
  if (p.metric == Metric::kCosine) {
    normalized = normalized_rows(data, n, dim);
    src = normalized.data();
  }

  // 1. Train.
  auto t0 = std::chrono::steady_clock::now();
  KMeansParams kp;
  kp.num_clusters = nc;
  kp.iterations = p.kmeans_iterations;
  kp.max_points_per_cluster = p.train_points_per_cluster;
  kp.seed = p.seed;
  kp.threads = p.threads;
  if (p.progress) kp.progress = [&](size_t d, size_t t) { p.progress(0, d, t); };
  ix.centroids_ = train_kmeans(src, n, dim, kp, pool);
  ix.tiles_ = CentroidTiles(ix.centroids_.data(), nc, dim, /*half=*/true);
  ix.timings_.train_ms = ms_since(t0);

  // 2. Assign every vector to its nearest centroid.
  t0 = std::chrono::steady_clock::now();
  std::vector<uint32_t> labels(n);
  std::vector<float> cdist(n);
  std::function<void(size_t, size_t)> assign_progress;
  if (p.progress) assign_progress = [&](size_t d, size_t t) { p.progress(1, d, t); };
  assign_nearest(src, n, dim, ix.tiles_, labels.data(), cdist.data(), pool, p.threads, assign_progress);
  // Cluster order, and inside a cluster ascending distance to the centroid:
  // near vectors are seen first and fill the top k with good candidates.
  std::vector<uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0u);
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    if (labels[a] != labels[b]) return labels[a] < labels[b];
    if (cdist[a] != cdist[b]) return cdist[a] < cdist[b];
    return a < b;
  });
  ix.clusters_.assign(nc, Cluster());
  for (size_t i = 0; i < n; ++i) ix.clusters_[labels[i]].count++;
  ix.n_ = n;
  if (ix.ids64_) {
    ix.base_ids64_.resize(n);
    for (size_t pos = 0; pos < n; ++pos) ix.base_ids64_[pos] = ids[order[pos]];
  } else {
    ix.base_ids32_.resize(n);
    for (size_t pos = 0; pos < n; ++pos) ix.base_ids32_[pos] = static_cast<uint32_t>(ids.empty() ? order[pos] : ids[order[pos]]);
  }
  ix.next_id_ = n;
  for (uint64_t id : ids) ix.next_id_ = std::max(ix.next_id_, id + 1);
  if (ix.has_vectors_) {
    ix.base_vectors_.resize(n * dim);
    for (size_t pos = 0; pos < n; ++pos)
      std::memcpy(&ix.base_vectors_[pos * dim], src + static_cast<size_t>(order[pos]) * dim, dim * sizeof(float));
  }
  ix.timings_.assign_ms = ms_since(t0);

  // 3. Rotate and encode.
  t0 = std::chrono::steady_clock::now();
  const size_t pd = ix.padded_dim_;
  ix.rotation_ = Rotation(p.rotation, dim, pd, p.seed + 1);
  ix.rotated_centroids_.resize(nc * pd);
  for (size_t c = 0; c < nc; ++c) ix.rotation_.apply(&ix.centroids_[c * dim], &ix.rotated_centroids_[c * pd]);
  {
    std::mt19937_64 rng(p.seed + 2);
    std::uniform_real_distribution<float> u(0.f, 1.f);
    ix.rounding_offsets_.resize(kRoundingRows * pd);
    for (auto& v : ix.rounding_offsets_) v = u(rng);
  }
  ix.base_codes_.assign(n * ix.npairs_, 0);
  ix.base_factors_.resize(n);
  ix.point_clusters_at_base();
  std::vector<size_t> offsets(nc + 1, 0);
  for (size_t c = 0; c < nc; ++c) offsets[c + 1] = offsets[c] + ix.clusters_[c].count;
  const size_t slots = pool.slots_for(nc, p.threads);
  std::vector<std::vector<float>> scratch(slots, std::vector<float>(pd + ix.npairs_));
  std::atomic<size_t> encoded{0};
  const size_t report_every = std::max<size_t>(1, nc / 100);
  std::atomic<size_t> clusters_done{0};
  pool.parallel_for(nc, p.threads, [&](size_t c, size_t slot) {
    float* o = scratch[slot].data();
    uint8_t* bytes = reinterpret_cast<uint8_t*>(o + pd);
    const size_t begin = offsets[c], count = offsets[c + 1] - begin;
    uint8_t* codes = &ix.base_codes_[begin * ix.npairs_];
    for (size_t i = 0; i < count; ++i) {
      ix.encode_vector(c, src + static_cast<size_t>(order[begin + i]) * dim, o, bytes, &ix.base_factors_[begin + i]);
      put_code(codes, count, i, ix.npairs_, bytes);
    }
    size_t e = encoded.fetch_add(count) + count;
    size_t cd = clusters_done.fetch_add(1) + 1;
    if (p.progress && (cd % report_every == 0 || cd == nc)) p.progress(2, std::min(e, n), n);
  });
  ix.timings_.encode_ms = ms_since(t0);
  return idx;
}

void IvfRabitqIndex::point_clusters_at_base() {
  const uint8_t* codes = blob_codes_ ? blob_codes_ : base_codes_.data();
  const Factor* factors = blob_factors_ ? blob_factors_ : base_factors_.data();
  const uint32_t* ids32 = blob_ids32_ ? blob_ids32_ : base_ids32_.data();
  const uint64_t* ids64 = blob_ids64_ ? blob_ids64_ : base_ids64_.data();
  const float* vectors = blob_vectors_ ? blob_vectors_ : base_vectors_.data();
  size_t pos = 0;
  for (auto& cl : clusters_) {
    cl.owned = false;
    cl.own_codes = {};
    cl.own_factors = {};
    cl.own_ids32 = {};
    cl.own_ids64 = {};
    cl.own_vectors = {};
    cl.codes = codes + pos * npairs_;
    cl.factors = factors + pos;
    cl.ids32 = ids64_ ? nullptr : ids32 + pos;
    cl.ids64 = ids64_ ? ids64 + pos : nullptr;
    cl.vectors = has_vectors_ ? vectors + pos * dim_ : nullptr;
    pos += cl.count;
  }
}

// Rotated residual of x against centroid c -> its 1-bit code (one byte per
// 8 coordinates) and RaBitQ factors. o: padded_dim floats of scratch.
void IvfRabitqIndex::encode_vector(size_t c, const float* x, float* o, uint8_t* bytes, Factor* f) const {
  const size_t pd = padded_dim_;
  const float* rc = &rotated_centroids_[c * pd];
  const float sqrt_d = std::sqrt(static_cast<float>(pd));
  rotation_.apply(x, o);
  double norm2 = 0, l1 = 0;
  for (size_t i = 0; i < pd; ++i) {
    o[i] -= rc[i];
    norm2 += double(o[i]) * o[i];
    l1 += std::fabs(double(o[i]));
  }
  uint32_t pop = 0;
  for (size_t pair = 0; pair < npairs_; ++pair) {
    uint8_t byte = 0;
    for (size_t t = 0; t < 8; ++t) {
      if (o[pair * 8 + t] > 0.f) {
        byte |= static_cast<uint8_t>(1u << t);
        pop++;
      }
    }
    bytes[pair] = byte;
  }
  // Inner product: the search ranks by ||q||^2 - 2<x,q> = ||x-q||^2 - ||x||^2,
  // so the constant term of each vector's estimate carries -||x||^2 and the
  // rest of the estimator (and its error bound) stays the L2 one.
  double xnorm2 = 0;
  if (metric_ == Metric::kInnerProduct)
    for (size_t i = 0; i < dim_; ++i) xnorm2 += double(x[i]) * x[i];
  f->residual_norm_sq = static_cast<float>(norm2 - xnorm2);
  f->popcount = static_cast<float>(pop);
  if (norm2 <= 0.0 || l1 <= 0.0) {
    f->ip_scale = 0.f;
    f->error_scale = 0.f;
    return;
  }
  const double norm = std::sqrt(norm2);
  const double a = l1 / (norm * sqrt_d);  // <xbar, o>, in (0, 1]
  f->ip_scale = static_cast<float>(-2.0 * norm2 / l1);
  const double r = std::max(0.0, (1.0 - a * a) / (a * a));
  // The paper's bound 2 ||x-c|| sqrt((1-a^2)/a^2) / sqrt(D-1), times 1.2:
  // with the query-quantization term added at search time, the plain bound
  // held at epsilon = 1.9 for ~98.9% of (query, vector) pairs on SIFT and
  // 1.2 brings that to ~99.7% (measured in test/index.test.ts).
  f->error_scale = static_cast<float>(kErrorCalibration * 2.0 * norm * std::sqrt(r) / std::sqrt(double(pd) - 1.0));
}

const uint8_t* IvfRabitqIndex::scan_block(const Cluster& cl, size_t local, uint8_t* scratch) const {
  size_t stride;
  const uint8_t* block = cl.codes + block_offset(cl.count, local, npairs_, &stride);
  if (stride == kFastScanBlock) return block;
  for (size_t p = 0; p < npairs_; ++p) std::memcpy(scratch + p * kFastScanBlock, block + p * stride, stride);
  return scratch;
}

void IvfRabitqIndex::read_code(const Cluster& cl, size_t local, uint8_t* bytes) const {
  get_code(cl.codes, cl.count, local, npairs_, bytes);
}

void IvfRabitqIndex::write_code(Cluster& cl, size_t local, const uint8_t* bytes) {
  put_code(cl.own_codes.data(), cl.count, local, npairs_, bytes);
}

void IvfRabitqIndex::unpack_code(const Cluster& cl, size_t local, uint64_t* bits) const {
  size_t stride;
  const uint8_t* block = cl.codes + block_offset(cl.count, local, npairs_, &stride);
  const size_t lane = local % kFastScanBlock;
  std::memset(bits, 0, words_ * sizeof(uint64_t));
  for (size_t pair = 0; pair < npairs_; ++pair) {
    const uint64_t byte = block[pair * stride + lane];
    bits[pair / 8] |= byte << ((pair % 8) * 8);
  }
}

// Copies a cluster out of the base block into its own growable arrays.
void IvfRabitqIndex::own_cluster(Cluster& cl) {
  if (cl.owned) return;
  const size_t n = cl.count;
  cl.own_codes.assign(cl.codes, cl.codes + n * npairs_);
  cl.own_factors.assign(cl.factors, cl.factors + n);
  if (ids64_)
    cl.own_ids64.assign(cl.ids64, cl.ids64 + n);
  else
    cl.own_ids32.assign(cl.ids32, cl.ids32 + n);
  if (has_vectors_) cl.own_vectors.assign(cl.vectors, cl.vectors + n * dim_);
  cl.owned = true;
}

namespace {
void refresh(Cluster& cl, bool ids64, bool vectors) {
  cl.codes = cl.own_codes.data();
  cl.factors = cl.own_factors.data();
  cl.ids32 = ids64 ? nullptr : cl.own_ids32.data();
  cl.ids64 = ids64 ? cl.own_ids64.data() : nullptr;
  cl.vectors = vectors ? cl.own_vectors.data() : nullptr;
}
}  // namespace

// Changes an owned cluster's count, re-laying the codes whose block changes
// shape (at most the last 32 vectors). New slots are zero until written.
void IvfRabitqIndex::resize_codes(Cluster& cl, size_t new_count) {
  const size_t old_count = cl.count;
  const size_t keep = std::min(old_count, new_count);
  const size_t start = keep / kFastScanBlock * kFastScanBlock;
  std::vector<uint8_t> moved((keep - start) * npairs_);
  for (size_t i = start; i < keep; ++i) get_code(cl.own_codes.data(), old_count, i, npairs_, &moved[(i - start) * npairs_]);
  cl.own_codes.resize(new_count * npairs_);
  std::fill(cl.own_codes.begin() + static_cast<long>(start * npairs_), cl.own_codes.end(), 0);
  for (size_t i = start; i < keep; ++i) put_code(cl.own_codes.data(), new_count, i, npairs_, &moved[(i - start) * npairs_]);
  cl.count = static_cast<uint32_t>(new_count);
}

const float* IvfRabitqIndex::prepare_query(const float* query, float* normalized) const {
  if (metric_ != Metric::kCosine) return query;
  double norm2 = 0;
  for (size_t i = 0; i < dim_; ++i) norm2 += double(query[i]) * query[i];
  RABITQ_THROW_IF_NOT(norm2 > 0.0, kRange, "query is a zero vector, which has no direction under the cosine metric");
  const double inv = 1.0 / std::sqrt(norm2);  // as in normalized_rows
  for (size_t i = 0; i < dim_; ++i) normalized[i] = static_cast<float>(query[i] * inv);
  return normalized;
}

// Internal squared-L2 style distance -> the metric the caller asked for.
float IvfRabitqIndex::to_metric(float internal, float qnorm2) const {
  switch (metric_) {
    case Metric::kCosine:
      return 0.5f * internal;  // ||a - b||^2 = 2 - 2 cos for unit vectors
    case Metric::kInnerProduct:
      return 0.5f * (qnorm2 - internal);
    default:
      return internal;
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

// Inner products of the query with vectors [b0, b0 + nb) of a cluster
// (FastScan, or the bit-plane reference path: same values) into s.ip, then
// their estimates and lower bounds into s.est and s.lower.
void IvfRabitqIndex::estimate_block(SearchScratch& s, const Cluster& cl, size_t b0, size_t nb, bool bitplane,
                                    const EstimateParams& ep) const {
  const Kernels& k = active_kernels();
  uint16_t* ip = s.ip.data();
  if (bitplane) {
    for (size_t j = 0; j < nb; ++j) {
      unpack_code(cl, b0 + j, s.code_bits.data());
      ip[j] = static_cast<uint16_t>(k.bitplane_ip(s.planes.data(), kQueryBits, s.code_bits.data(), words_));
    }
  } else {
    k.fastscan(scan_block(cl, b0, s.tail.data()), s.luts.data(), npairs_, ip);
  }
  k.estimate(reinterpret_cast<const float*>(cl.factors + b0), ip, nb, ep, s.est.data(), s.lower.data());
}

void IvfRabitqIndex::check_search_params(const SearchParams& sp) const {
  RABITQ_THROW_IF_NOT(sp.k >= 1, kRange, "k must be >= 1");
  RABITQ_THROW_IF_NOT(sp.nprobe >= 1, kRange, "nprobe must be >= 1");
  RABITQ_THROW_IF_NOT(!sp.rerank || has_vectors_, kRange,
                      "rerank needs the raw vectors, and this index was built with storeVectors: false");
}

void IvfRabitqIndex::search_with(SearchScratch& s, const float* query, const float* coarse, const SearchParams& sp,
                                 int64_t* ids, float* dists, SearchStats* stats) const {
  const Kernels& k = active_kernels();
  query = prepare_query(query, s.qnormed.data());
  if (coarse == nullptr) {
    tiles_.partial_distances(query, 1, s.coarse.data(), s.tile.data(), probe_by_ip());
    coarse = s.coarse.data();
  }
  const Filter* filter = sp.filter;
  // The nprobe nearest centroids, probed nearest first. A bounded max-heap
  // touches most of the numClusters distances with one compare each. With a
  // filter every cluster is ordered: the scan goes on past nprobe until k
  // allowed vectors were found, so a selective filter still returns k.
  const size_t nprobe = std::min(sp.nprobe, num_clusters_);
  const size_t order_len = filter ? num_clusters_ : nprobe;
  auto& probe = s.probe;
  probe.clear();
  for (size_t c = 0; c < num_clusters_; ++c) {
    const std::pair<float, uint32_t> e{coarse[c], static_cast<uint32_t>(c)};
    if (probe.size() < order_len) {
      probe.push_back(e);
      std::push_heap(probe.begin(), probe.end());
    } else if (e < probe.front()) {
      std::pop_heap(probe.begin(), probe.end());
      probe.back() = e;
      std::push_heap(probe.begin(), probe.end());
    }
  }
  std::sort_heap(probe.begin(), probe.end());

  const bool ip = metric_ == Metric::kInnerProduct;
  const float query_norm2 = ip ? k.dot(query, query, dim_) : 0.f;
  rotation_.apply(query, s.qrot.data());
  s.query_hash = hash_query(query, dim_);
  s.top.reset(sp.k);
  // Re-ranking is deferred: while scanning, keep every vector whose lower
  // bound is below the k-th smallest upper bound seen so far (no vector above
  // it can be in the top k; the upper bounds use twice the error width), then
  // re-rank those in ascending lower-bound order and stop at the first lower
  // bound above the exact k-th distance. This re-ranks far fewer vectors than
  // deciding during the scan, when the top k is still poor.
  s.upper.reset(sp.k);
  s.cands.clear();
  SearchStats st;
  st.queries = 1;
  const size_t vec_bytes = dim_ * sizeof(float);
  // Re-rank the pending candidates of one cluster in rounds: pick the next few
  // with the smallest lower bounds (nth_element, linear), prefetch their
  // vectors so the memory loads overlap, score them, then drop every
  // candidate whose lower bound no longer beats the k-th exact distance.
  // Called after each probed cluster, so the exact k-th distance tightens the
  // scan early.
  auto flush_candidates = [&](const Cluster& cl) {
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
        const char* v = reinterpret_cast<const char*>(cl.vectors + static_cast<size_t>(cands[i].second) * dim_);
        for (size_t off = 0; off < vec_bytes && off < 512; off += 64) __builtin_prefetch(v + off);
      }
      for (size_t i = done; i < end; ++i) {
        if (s.top.full() && cands[i].first >= s.top.worst()) {
          m = i;  // a sorted round: nothing after this can enter either
          break;
        }
        const size_t local = cands[i].second;
        const float* x = cl.vectors + local * dim_;
        st.reranked++;
        const float d = ip ? query_norm2 - 2.f * k.dot(query, x, dim_) : k.l2sq(query, x, dim_);
        s.top.push(d, cl.id(local));
      }
      done = end;
    }
    cands.clear();
  };
  for (size_t pi = 0; pi < probe.size(); ++pi) {
    if (pi >= nprobe && s.top.full()) break;
    const size_t c = probe[pi].second;
    const Cluster& cl = clusters_[c];
    const size_t count = cl.count;
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
    const EstimateParams ep{qnorm2, two_lo, two_delta, sumq, err_mul, quant_mul};
    st.codes_scanned += count;
    for (size_t b0 = 0; b0 < count; b0 += kFastScanBlock) {
      const size_t nb = std::min(kFastScanBlock, count - b0);
      estimate_block(s, cl, b0, nb, sp.bitplane, ep);
      const float* est = s.est.data();
      const float* lower = s.lower.data();
      if (!sp.rerank) {
        for (size_t j = 0; j < nb; ++j) {
          const int64_t id = cl.id(b0 + j);
          if (filter && !filter->allows(static_cast<uint64_t>(id))) continue;
          s.top.push(est[j], id);
        }
        continue;
      }
      float threshold = s.upper.full() ? s.upper.worst() : std::numeric_limits<float>::infinity();
      if (s.top.full()) threshold = std::min(threshold, s.top.worst());
      for (size_t j = 0; j < nb; ++j) {
        if (lower[j] < threshold) {
          const uint32_t local = static_cast<uint32_t>(b0 + j);
          if (filter && !filter->allows(static_cast<uint64_t>(cl.id(local)))) continue;
          s.cands.push_back({lower[j], local});
          // Twice the bound above the estimate: the threshold only filters
          // candidates (re-ranking still stops at the exact k-th distance),
          // and a too-small threshold would silently drop true neighbours.
          s.upper.push(3.f * est[j] - 2.f * lower[j], static_cast<int64_t>(c) << 32 | local);
          if (s.upper.full()) threshold = std::min(threshold, s.upper.worst());
        }
      }
    }
    if (sp.rerank) flush_candidates(cl);
  }
  auto& h = s.top.h;
  std::sort(h.begin(), h.end());
  for (size_t i = 0; i < sp.k; ++i) {
    if (i < h.size()) {
      ids[i] = h[i].second;
      dists[i] = to_metric(h[i].first, query_norm2);
    } else {
      ids[i] = -1;
      dists[i] = ip ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::infinity();
    }
  }
  if (stats) stats->add(st);
}

void IvfRabitqIndex::search(const float* query, const SearchParams& sp, int64_t* ids, float* dists,
                            SearchStats* stats) const {
  check_search_params(sp);
  std::shared_lock<std::shared_mutex> lock(mu_);
  SearchScratch& s = thread_scratch(*this);
  search_with(s, query, nullptr, sp, ids, dists, stats);
}

void IvfRabitqIndex::search_batch(const float* queries, size_t nq, const SearchParams& sp, int64_t* ids,
                                  float* dists, SearchStats* total, SearchStats* per_query, ThreadPool& pool,
                                  size_t threads) const {
  check_search_params(sp);
  if (metric_ == Metric::kCosine)
    for (size_t q = 0; q < nq; ++q) {
      double norm2 = 0;
      for (size_t i = 0; i < dim_; ++i) norm2 += double(queries[q * dim_ + i]) * queries[q * dim_ + i];
      RABITQ_THROW_IF_NOT(norm2 > 0.0, kRange,
                          "query " + std::to_string(q) + " is a zero vector, which has no direction under the cosine metric");
    }
  std::shared_lock<std::shared_mutex> lock(mu_);
  const size_t blocks = (nq + kQueryBlock - 1) / kQueryBlock;
  const size_t slots = pool.slots_for(blocks, threads);
  std::vector<SearchStats> slot_stats(slots);
  std::vector<std::vector<float>> coarse(slots), normalized(slots);
  pool.parallel_for(blocks, threads, [&](size_t b, size_t slot) {
    SearchScratch& s = thread_scratch(*this);
    const size_t q0 = b * kQueryBlock;
    const size_t np = std::min(kQueryBlock, nq - q0);
    auto& cb = coarse[slot];
    cb.resize(np * num_clusters_);
    const float* block = queries + q0 * dim_;
    if (metric_ == Metric::kCosine) {
      auto& nb = normalized[slot];
      nb.resize(np * dim_);
      for (size_t i = 0; i < np; ++i) prepare_query(block + i * dim_, nb.data() + i * dim_);
      block = nb.data();
    }
    // The coarse step for the whole block at once: every centroid tile is
    // loaded once for up to 16 queries.
    tiles_.partial_distances(block, np, cb.data(), s.tile.data(), probe_by_ip());
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

void IvfRabitqIndex::estimate_all(const float* query, float* estimates, float* bounds, bool bitplane,
                                  size_t out_len) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  for (const Cluster& cl : clusters_)
    for (size_t i = 0; i < cl.count; ++i)
      if (static_cast<uint64_t>(cl.id(i)) >= out_len)
        throw Error(ErrorKind::kRange, "estimateAll indexes its output by id, and id " + std::to_string(cl.id(i)) +
                                           " is not below " + std::to_string(out_len) +
                                           " (it needs the default ids 0..size-1)");
  SearchScratch& s = thread_scratch(*this);
  query = prepare_query(query, s.qnormed.data());
  rotation_.apply(query, s.qrot.data());
  s.query_hash = hash_query(query, dim_);
  for (size_t c = 0; c < num_clusters_; ++c) {
    const Cluster& cl = clusters_[c];
    const size_t count = cl.count;
    if (count == 0) continue;
    prepare_cluster_query(s, c, bitplane);
    const EstimateParams ep{s.qnorm2, 2.f * s.lo, 2.f * s.delta, s.sumq, 0.f, 0.f};
    for (size_t b0 = 0; b0 < count; b0 += kFastScanBlock) {
      const size_t nb = std::min(kFastScanBlock, count - b0);
      estimate_block(s, cl, b0, nb, bitplane, ep);
      for (size_t j = 0; j < nb; ++j) {
        const Factor& f = cl.factors[b0 + j];
        const int64_t id = cl.id(b0 + j);
        estimates[id] = s.est[j];
        bounds[id] = f.error_scale * std::sqrt(s.qnorm2) - s.delta * quant_sqrt_ * f.ip_scale;
      }
    }
  }
}

// ---- mutation -------------------------------------------------------------------

void IvfRabitqIndex::build_id_map() const {
  if (id_map_) return;
  auto map = std::make_unique<std::unordered_map<uint64_t, uint64_t>>();
  map->reserve(n_);
  for (size_t c = 0; c < clusters_.size(); ++c) {
    const Cluster& cl = clusters_[c];
    for (size_t i = 0; i < cl.count; ++i) (*map)[static_cast<uint64_t>(cl.id(i))] = (uint64_t(c) << 32) | i;
  }
  id_map_ = std::move(map);
}

bool IvfRabitqIndex::contains(uint64_t id) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  std::lock_guard<std::mutex> g(id_map_mu_);
  build_id_map();
  return id_map_->count(id) != 0;
}

size_t IvfRabitqIndex::size() const {
  std::shared_lock<std::shared_mutex> lock(mu_);  // add/remove change n_ on other threads
  return n_;
}

void IvfRabitqIndex::add(const float* data, size_t n, const uint32_t* ids32, const uint64_t* ids64, ThreadPool& pool,
                         size_t threads) {
  RABITQ_THROW_IF_NOT(n >= 1, kRange, "cannot add an empty set of vectors");
  RABITQ_THROW_IF_NOT(!(ids64 && !ids64_), kType, "this index has 32-bit ids: pass ids as a Uint32Array");
  RABITQ_THROW_IF_NOT(!(ids32 && ids64_), kType, "this index has 64-bit ids: pass ids as a BigUint64Array");
  check_rows(data, n, dim_, metric_, "vectors");
  std::vector<uint64_t> ids;
  if (ids32 || ids64) ids = checked_ids(ids32, ids64, n);
  std::vector<float> normalized;
  const float* src = data;
  if (metric_ == Metric::kCosine) {
    normalized = normalized_rows(data, n, dim_);
    src = normalized.data();
  }
  // Assign and encode outside the lock: centroids, rotation and tiles never
  // change after build, so searches keep running meanwhile.
  std::vector<uint32_t> labels(n);
  std::vector<float> cdist(n);
  assign_nearest(src, n, dim_, tiles_, labels.data(), cdist.data(), pool, threads, nullptr);
  std::vector<uint8_t> codes(n * npairs_);
  std::vector<Factor> factors(n);
  const size_t slots = pool.slots_for(n, threads);
  std::vector<std::vector<float>> scratch(slots, std::vector<float>(padded_dim_));
  pool.parallel_for(n, threads, [&](size_t i, size_t slot) {
    encode_vector(labels[i], src + i * dim_, scratch[slot].data(), &codes[i * npairs_], &factors[i]);
  });

  std::unique_lock<std::shared_mutex> lock(mu_);
  std::lock_guard<std::mutex> g(id_map_mu_);
  build_id_map();
  // The same limit as build and load: a saved index must load again.
  RABITQ_THROW_IF_NOT(n_ + n < kMaxId32, kRange,
                      "an index holds fewer than 2^31 vectors; it has " + std::to_string(n_) + ", adding " +
                          std::to_string(n) + " is too many");
  if (ids.empty()) {
    const uint64_t max = ids64_ ? kMaxId64 : kMaxId32;
    RABITQ_THROW_IF_NOT(next_id_ + n - 1 <= max, kRange, "no free default ids left: pass ids explicitly");
    ids.resize(n);
    for (size_t i = 0; i < n; ++i) ids[i] = next_id_ + i;
  }
  for (size_t i = 0; i < n; ++i)
    if (id_map_->count(ids[i]))
      throw Error(ErrorKind::kRange, "ids[" + std::to_string(i) + "] = " + std::to_string(ids[i]) +
                                         " is already in the index");
  id_map_->reserve(n_ + n);
  for (size_t i = 0; i < n; ++i) {
    Cluster& cl = clusters_[labels[i]];
    own_cluster(cl);
    const size_t pos = cl.count;
    resize_codes(cl, pos + 1);
    put_code(cl.own_codes.data(), cl.count, pos, npairs_, &codes[i * npairs_]);
    cl.own_factors.push_back(factors[i]);
    if (ids64_)
      cl.own_ids64.push_back(ids[i]);
    else
      cl.own_ids32.push_back(static_cast<uint32_t>(ids[i]));
    if (has_vectors_) cl.own_vectors.insert(cl.own_vectors.end(), src + i * dim_, src + (i + 1) * dim_);
    refresh(cl, ids64_, has_vectors_);
    (*id_map_)[ids[i]] = (uint64_t(labels[i]) << 32) | pos;
    next_id_ = std::max(next_id_, ids[i] + 1);
  }
  n_ += n;
}

size_t IvfRabitqIndex::remove(const uint64_t* ids, size_t n) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  std::lock_guard<std::mutex> g(id_map_mu_);
  build_id_map();
  size_t removed = 0;
  std::vector<uint8_t> bytes(npairs_);
  for (size_t r = 0; r < n; ++r) {
    auto it = id_map_->find(ids[r]);
    if (it == id_map_->end()) continue;
    const size_t c = it->second >> 32, pos = it->second & 0xffffffffu;
    id_map_->erase(it);
    Cluster& cl = clusters_[c];
    own_cluster(cl);
    const size_t last = cl.count - 1;
    if (pos != last) {
      // The last vector of the cluster fills the hole.
      get_code(cl.own_codes.data(), cl.count, last, npairs_, bytes.data());
      put_code(cl.own_codes.data(), cl.count, pos, npairs_, bytes.data());
      cl.own_factors[pos] = cl.own_factors[last];
      if (ids64_)
        cl.own_ids64[pos] = cl.own_ids64[last];
      else
        cl.own_ids32[pos] = cl.own_ids32[last];
      if (has_vectors_)
        std::memcpy(&cl.own_vectors[pos * dim_], &cl.own_vectors[last * dim_], dim_ * sizeof(float));
      (*id_map_)[ids64_ ? cl.own_ids64[pos] : cl.own_ids32[pos]] = (uint64_t(c) << 32) | pos;
    }
    resize_codes(cl, last);
    cl.own_factors.pop_back();
    if (ids64_)
      cl.own_ids64.pop_back();
    else
      cl.own_ids32.pop_back();
    if (has_vectors_) cl.own_vectors.resize(last * dim_);
    refresh(cl, ids64_, has_vectors_);
    removed++;
  }
  n_ -= removed;
  return removed;
}

void IvfRabitqIndex::compact() {
  // After a lazy (mmap) load the big arrays are unchecked, and compact copies
  // them out of the mapping and lets it go: check them first (outside the
  // lock), or verify() would have nothing left to check them against.
  std::shared_ptr<persist::Container> unchecked;
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    unchecked = container_;
  }
  if (unchecked) unchecked->verify_all();
  std::unique_lock<std::shared_mutex> lock(mu_);
  std::lock_guard<std::mutex> g(id_map_mu_);
  HugeVector<uint8_t> codes(n_ * npairs_);
  HugeVector<Factor> factors(n_);
  HugeVector<uint32_t> ids32(ids64_ ? 0 : n_);
  HugeVector<uint64_t> ids64(ids64_ ? n_ : 0);
  HugeVector<float> vectors(has_vectors_ ? n_ * dim_ : 0);
  std::vector<uint8_t> bytes(npairs_);
  std::vector<uint32_t> order;
  size_t base = 0;
  for (auto& cl : clusters_) {
    // Ascending residual norm (the distance to the centroid, for L2 and
    // cosine), as build leaves a cluster.
    order.resize(cl.count);
    std::iota(order.begin(), order.end(), 0u);
    std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
      return cl.factors[a].residual_norm_sq < cl.factors[b].residual_norm_sq;
    });
    for (size_t i = 0; i < cl.count; ++i) {
      const size_t from = order[i];
      get_code(cl.codes, cl.count, from, npairs_, bytes.data());
      put_code(&codes[base * npairs_], cl.count, i, npairs_, bytes.data());
      factors[base + i] = cl.factors[from];
      if (ids64_)
        ids64[base + i] = cl.ids64[from];
      else
        ids32[base + i] = cl.ids32[from];
      if (has_vectors_) std::memcpy(&vectors[(base + i) * dim_], cl.vectors + from * dim_, dim_ * sizeof(float));
    }
    base += cl.count;
  }
  base_codes_ = std::move(codes);
  base_factors_ = std::move(factors);
  base_ids32_ = std::move(ids32);
  base_ids64_ = std::move(ids64);
  base_vectors_ = std::move(vectors);
  blob_codes_ = nullptr;
  blob_factors_ = nullptr;
  blob_ids32_ = nullptr;
  blob_ids64_ = nullptr;
  blob_vectors_ = nullptr;
  point_clusters_at_base();
  blob_.reset();
  container_.reset();  // it holds the blob too: this is what unmaps the file
  id_map_.reset();
}

MemoryUsage IvfRabitqIndex::memory_usage() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  MemoryUsage m;
  m.codes = n_ * npairs_;
  m.factors = n_ * sizeof(Factor);
  m.ids = n_ * (ids64_ ? sizeof(uint64_t) : sizeof(uint32_t));
  m.vectors = has_vectors_ ? n_ * dim_ * sizeof(float) : 0;
  m.centroids = (centroids_.size() + rotated_centroids_.size()) * sizeof(float) +
                tiles_.num_tiles() * 16 * (dim_ * sizeof(uint16_t) + sizeof(float));
  m.other = clusters_.size() * sizeof(Cluster) + rounding_offsets_.size() * sizeof(float) +
            rotation_.state().size() * sizeof(float);
  {
    std::lock_guard<std::mutex> g(id_map_mu_);
    // About what a node-based hash map costs per entry (node + bucket).
    if (id_map_) m.other += id_map_->size() * 40;
  }
  // Growth slack of clusters changed by add/remove (compact() releases it).
  for (const auto& cl : clusters_)
    if (cl.owned)
      m.other += (cl.own_codes.capacity() - cl.own_codes.size()) +
                 (cl.own_factors.capacity() - cl.own_factors.size()) * sizeof(Factor);
  // Clusters changed by add/remove were copied out of the mapping.
  if (blob_ && blob_mapped_) {
    const size_t per_vector = npairs_ + sizeof(Factor) + (ids64_ ? sizeof(uint64_t) : sizeof(uint32_t)) +
                              (has_vectors_ ? dim_ * sizeof(float) : 0);
    for (const auto& cl : clusters_)
      if (!cl.owned) m.mapped += cl.count * per_vector;
  }
  return m;
}

}  // namespace rabitq
