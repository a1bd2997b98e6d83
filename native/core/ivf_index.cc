// The facade: build, add/remove/compact and the search entry points, each
// taking the index's lock and handing the work to its parts (see the map at
// the top of ivf_index.h). Save and load: ivf_index_io.cc.
#include "ivf_index.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>

#include "common.h"
#include "persist/reader.h"
#include "validation.h"

namespace rabitq {

namespace {
double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

IvfRabitqIndex::~IvfRabitqIndex() = default;

void IvfRabitqIndex::init_geometry(size_t dim, Metric metric, bool ids64, bool has_vectors, unsigned bits) {
  dim_ = dim;
  space_ = MetricSpace(metric, dim);
  quantizer_.init(dim, bits);
  store_.configure(quantizer_.layout(), has_vectors ? dim : 0, ids64, quantizer_.ex_code_bytes());
}

std::unique_ptr<IvfRabitqIndex> IvfRabitqIndex::build(const float* data, size_t n, const BuildParams& p,
                                                      ThreadPool& pool) {
  const size_t nc = checked_build_shape(p.dim, n, p.metric, p.num_clusters, p.rotation);
  RABITQ_THROW_IF_NOT(p.bits >= kMinBits && p.bits <= kMaxBits, kRange,
                      "bits must be an integer in " + std::to_string(kMinBits) + ".." + std::to_string(kMaxBits) +
                          ", got " + std::to_string(p.bits));
  const size_t dim = p.dim;
  std::unique_ptr<IvfRabitqIndex> idx(new IvfRabitqIndex());
  IvfRabitqIndex& ix = *idx;
  ix.init_geometry(dim, p.metric, p.ids64 != nullptr, p.store_vectors, p.bits);
  // Checked here, on the worker, so the JS thread never scans a large input.
  ix.space_.check_rows(data, n, "vectors");
  std::vector<uint64_t> ids;
  if (p.ids32 || p.ids64) ids = checked_ids(p.ids32, p.ids64, n);
  ix.num_clusters_ = nc;
  ix.seed_ = p.seed;
  std::vector<float> normalized;
  const float* src = ix.space_.prepare_rows(data, n, &normalized);

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
  std::vector<uint32_t> counts(nc, 0);
  for (size_t i = 0; i < n; ++i) counts[labels[i]]++;
  ClusterStore& store = ix.store_;
  store.allocate_base(counts);
  if (store.ids64()) {
    uint64_t* out = store.base<uint64_t>(kIdColumn);
    for (size_t pos = 0; pos < n; ++pos) out[pos] = ids[order[pos]];
  } else {
    uint32_t* out = store.base<uint32_t>(kIdColumn);
    for (size_t pos = 0; pos < n; ++pos) out[pos] = static_cast<uint32_t>(ids.empty() ? order[pos] : ids[order[pos]]);
  }
  uint64_t next_id = n;
  for (uint64_t id : ids) next_id = std::max(next_id, id + 1);
  ix.id_map_.set_next_id(next_id);
  if (store.has_vectors()) {
    float* out = store.base<float>(kVectorColumn);
    for (size_t pos = 0; pos < n; ++pos)
      std::memcpy(out + pos * dim, src + static_cast<size_t>(order[pos]) * dim, dim * sizeof(float));
  }
  ix.timings_.assign_ms = ms_since(t0);

  // 3. Rotate and encode.
  t0 = std::chrono::steady_clock::now();
  ix.quantizer_.train(p.rotation, p.seed + 1, p.seed + 2, ix.centroids_.data(), nc);
  const size_t pd = ix.quantizer_.padded_dim(), code_bytes = ix.quantizer_.code_bytes();
  const CodeLayout& layout = ix.quantizer_.layout();
  uint8_t* all_codes = store.base<uint8_t>(kCodeColumn);
  Factor* factors = store.base<Factor>(kFactorColumn);
  const size_t ex_bytes = ix.quantizer_.ex_code_bytes();
  uint8_t* ex_codes = ex_bytes ? store.base<uint8_t>(kExCodeColumn) : nullptr;
  ExFactor* ex_factors = ex_bytes ? store.base<ExFactor>(kExFactorColumn) : nullptr;
  const size_t slots = pool.slots_for(nc, p.threads);
  std::vector<std::vector<float>> scratch(slots, std::vector<float>(pd + code_bytes));
  std::atomic<size_t> encoded{0};
  const size_t report_every = std::max<size_t>(1, nc / 100);
  std::atomic<size_t> clusters_done{0};
  pool.parallel_for(nc, p.threads, [&](size_t c, size_t slot) {
    float* o = scratch[slot].data();
    uint8_t* bytes = reinterpret_cast<uint8_t*>(o + pd);
    const size_t begin = store.base_row(c), count = store.count(c);
    uint8_t* codes = all_codes + begin * code_bytes;
    for (size_t i = 0; i < count; ++i) {
      const float* x = src + static_cast<size_t>(order[begin + i]) * dim;
      ix.quantizer_.encode(c, x, ix.space_.vector_offset(x), o, bytes, &factors[begin + i]);
      layout.put(codes, count, i, bytes);
      if (ex_bytes) ix.quantizer_.encode_ex(o, ex_codes + (begin + i) * ex_bytes, &ex_factors[begin + i]);
    }
    size_t e = encoded.fetch_add(count) + count;
    size_t cd = clusters_done.fetch_add(1) + 1;
    if (p.progress && (cd % report_every == 0 || cd == nc)) p.progress(2, std::min(e, n), n);
  });
  ix.timings_.encode_ms = ms_since(t0);
  return idx;
}

// ---- search ---------------------------------------------------------------------

void IvfRabitqIndex::search(const float* query, const SearchParams& sp, int64_t* ids, float* dists,
                            SearchStats* stats) const {
  check_search_params(sp, has_vectors());
  std::shared_lock<std::shared_mutex> lock(mu_);
  const IvfScanner sc = scanner();
  sc.search(sc.scratch(), query, nullptr, sp, ids, dists, stats);
}

void IvfRabitqIndex::search_batch(const float* queries, size_t nq, const SearchParams& sp, int64_t* ids, float* dists,
                                  SearchStats* total, SearchStats* per_query, ThreadPool& pool, size_t threads) const {
  check_search_params(sp, has_vectors());
  space_.check_queries(queries, nq);
  std::shared_lock<std::shared_mutex> lock(mu_);
  scanner().search_batch(queries, nq, sp, ids, dists, total, per_query, pool, threads);
}

void IvfRabitqIndex::estimate_all(const float* query, float* estimates, float* bounds, bool bitplane,
                                  size_t out_len) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  for (size_t c = 0; c < store_.num_clusters(); ++c) {
    const ClusterView cl = store_.view(c);
    for (size_t i = 0; i < cl.count; ++i)
      if (static_cast<uint64_t>(cl.id(i)) >= out_len)
        throw Error(ErrorKind::kRange, "estimateAll indexes its output by id, and id " + std::to_string(cl.id(i)) +
                                           " is not below " + std::to_string(out_len) +
                                           " (it needs the default ids 0..size-1)");
  }
  scanner().estimate_all(query, estimates, bounds, bitplane);
}

// ---- mutation -------------------------------------------------------------------

bool IvfRabitqIndex::contains(uint64_t id) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  std::lock_guard<std::mutex> g(id_map_mu_);
  id_map_.ensure(store_);
  return id_map_.contains(id);
}

size_t IvfRabitqIndex::size() const {
  std::shared_lock<std::shared_mutex> lock(mu_);  // add/remove change the count on other threads
  return store_.size();
}

void IvfRabitqIndex::add(const float* data, size_t n, const uint32_t* ids32, const uint64_t* ids64, ThreadPool& pool,
                         size_t threads) {
  RABITQ_THROW_IF_NOT(n >= 1, kRange, "cannot add an empty set of vectors");
  check_id_width(ids32, ids64, store_.ids64());
  space_.check_rows(data, n, "vectors");
  std::vector<uint64_t> ids;
  if (ids32 || ids64) ids = checked_ids(ids32, ids64, n);
  std::vector<float> normalized;
  const float* src = space_.prepare_rows(data, n, &normalized);
  // Assign and encode outside the lock: centroids, rotation and tiles never
  // change after build, so searches keep running meanwhile.
  std::vector<uint32_t> labels(n);
  std::vector<float> cdist(n);
  assign_nearest(src, n, dim_, tiles_, labels.data(), cdist.data(), pool, threads, nullptr);
  const size_t code_bytes = quantizer_.code_bytes();
  std::vector<uint8_t> codes(n * code_bytes);
  std::vector<Factor> factors(n);
  const size_t ex_bytes = quantizer_.ex_code_bytes();
  std::vector<uint8_t> ex_codes(n * ex_bytes);
  std::vector<ExFactor> ex_factors(ex_bytes ? n : 0);
  const size_t slots = pool.slots_for(n, threads);
  std::vector<std::vector<float>> scratch(slots, std::vector<float>(quantizer_.padded_dim()));
  pool.parallel_for(n, threads, [&](size_t i, size_t slot) {
    const float* x = src + i * dim_;
    float* o = scratch[slot].data();
    quantizer_.encode(labels[i], x, space_.vector_offset(x), o, &codes[i * code_bytes], &factors[i]);
    if (ex_bytes) quantizer_.encode_ex(o, &ex_codes[i * ex_bytes], &ex_factors[i]);
  });

  std::unique_lock<std::shared_mutex> lock(mu_);
  std::lock_guard<std::mutex> g(id_map_mu_);
  id_map_.ensure(store_);
  // The same limit as build and load: a saved index must load again.
  const size_t size = store_.size();
  RABITQ_THROW_IF_NOT(size + n < kMaxId32, kRange,
                      "an index holds fewer than 2^31 vectors; it has " + std::to_string(size) + ", adding " +
                          std::to_string(n) + " is too many");
  if (ids.empty()) ids = id_map_.default_ids(n, store_.ids64());
  id_map_.check_absent(ids);
  id_map_.reserve(size + n);
  const bool vectors = store_.has_vectors();
  for (size_t i = 0; i < n; ++i) {
    const size_t pos =
        store_.append(labels[i], &codes[i * code_bytes], factors[i], ex_bytes ? &ex_codes[i * ex_bytes] : nullptr,
                      ex_bytes ? &ex_factors[i] : nullptr, ids[i], vectors ? src + i * dim_ : nullptr);
    id_map_.set(ids[i], labels[i], pos);
    id_map_.note_used(ids[i]);
  }
}

size_t IvfRabitqIndex::remove(const uint64_t* ids, size_t n) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  std::lock_guard<std::mutex> g(id_map_mu_);
  id_map_.ensure(store_);
  size_t removed = 0;
  IdMap::Place at;
  for (size_t r = 0; r < n; ++r) {
    if (!id_map_.take(ids[r], &at)) continue;
    uint64_t moved = 0;
    if (store_.remove_at(at.cluster, at.pos, &moved)) id_map_.set(moved, at.cluster, at.pos);
    removed++;
  }
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
  // Ascending residual norm (the distance to the centroid, for L2 and
  // cosine), as build leaves a cluster.
  store_.compact([](const ClusterView& cl, std::vector<uint32_t>& order) {
    std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
      return cl.factors[a].residual_norm_sq < cl.factors[b].residual_norm_sq;
    });
  });
  container_.reset();  // it holds the blob too: this is what unmaps the file
  id_map_.reset();
}

MemoryUsage IvfRabitqIndex::memory_usage() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  MemoryUsage m;
  m.codes = store_.column_bytes(kCodeColumn);
  m.factors = store_.column_bytes(kFactorColumn);
  m.ex_codes = store_.column_bytes(kExCodeColumn) + store_.column_bytes(kExFactorColumn);
  m.ids = store_.column_bytes(kIdColumn);
  m.vectors = store_.column_bytes(kVectorColumn);
  m.centroids = (centroids_.size() + quantizer_.rotated_centroids().size()) * sizeof(float) +
                tiles_.num_tiles() * 16 * (dim_ * sizeof(uint16_t) + sizeof(float));
  m.other = store_.bookkeeping_bytes() + quantizer_.rounding_offsets().size() * sizeof(float) +
            quantizer_.rotation().state().size() * sizeof(float);
  {
    std::lock_guard<std::mutex> g(id_map_mu_);
    m.other += id_map_.memory_bytes();
  }
  // Growth slack of clusters changed by add/remove (compact() releases it),
  // counted for codes and factors as before the split (ids and vectors grow
  // too but are not counted here).
  m.other += store_.growth_slack(kCodeColumn) + store_.growth_slack(kFactorColumn) +
             store_.growth_slack(kExCodeColumn) + store_.growth_slack(kExFactorColumn);
  // Clusters changed by add/remove were copied out of the mapping.
  m.mapped = store_.mapped_bytes();
  return m;
}

}  // namespace rabitq
