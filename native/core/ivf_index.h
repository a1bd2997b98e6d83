// The IVF-RaBitQ index: k-means partitions, 1-bit RaBitQ codes of the rotated
// residuals stored per cluster in FastScan blocks, and exact re-ranking where
// the RaBitQ error bound says a vector may still enter the top k.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "huge_pages.h"
#include "kmeans.h"
#include "rotation.h"
#include "thread_pool.h"

namespace rabitq {

// Per-vector RaBitQ factors, kept together so one cache line serves the
// estimate and its bound.
struct Factor {
  float residual_norm_sq;  // ||x - c||^2
  float ip_scale;          // -2 ||x - c|| / (<xbar, o> sqrt(D))
  float popcount;          // number of set bits in the code
  float error_scale;       // 1.2 * 2 ||x - c|| sqrt((1 - <xbar,o>^2) / <xbar,o>^2) / sqrt(D - 1)
};
static_assert(sizeof(Factor) == 16, "Factor must stay 16 bytes");
// The estimate kernel reads a Factor as 4 floats in this order.
static_assert(offsetof(Factor, ip_scale) == 4 && offsetof(Factor, popcount) == 8 && offsetof(Factor, error_scale) == 12,
              "Factor layout is read by Kernels::estimate");

// Distances the index ranks by. Internally every metric is a squared L2
// distance (cosine on normalized vectors; inner product as ||q||^2 - 2<x,q>,
// see ivf_index.cc) so one search path serves all three.
enum class Metric : uint32_t { kL2 = 0, kCosine = 1, kInnerProduct = 2 };

struct BuildParams {
  size_t dim = 0;
  size_t num_clusters = 0;  // 0 = about 4 * sqrt(n)
  size_t kmeans_iterations = 10;
  size_t train_points_per_cluster = 256;
  uint64_t seed = 42;
  RotationKind rotation = RotationKind::kFht;
  Metric metric = Metric::kL2;
  bool store_vectors = true;  // false: no exact re-ranking, 4*dim bytes per vector saved
  size_t threads = 0;  // 0 = whole pool
  // Caller ids, one per vector (at most one of the two; neither = 0..n-1).
  const uint32_t* ids32 = nullptr;
  const uint64_t* ids64 = nullptr;
  // phase: 0 train, 1 assign, 2 encode.
  std::function<void(int phase, size_t done, size_t total)> progress;
};

// Allow-list applied inside the scan: a bitset over ids (bit i of byte i/8,
// least significant first), or an ascending list of 32- or 64-bit ids.
struct Filter {
  const uint8_t* bits = nullptr;
  size_t nbits = 0;
  const uint32_t* sorted32 = nullptr;
  const uint64_t* sorted64 = nullptr;
  size_t count = 0;
  bool allows(uint64_t id) const;
};

struct SearchParams {
  size_t k = 10;
  size_t nprobe = 16;
  bool rerank = true;
  float epsilon = 1.9f;     // multiplier of the error bound
  bool bitplane = false;    // reference estimator path (same estimates as FastScan)
  const Filter* filter = nullptr;
};

struct SearchStats {
  uint64_t queries = 0;
  uint64_t clusters_probed = 0;
  uint64_t codes_scanned = 0;
  uint64_t reranked = 0;
  uint64_t candidates = 0;  // vectors kept for possible re-ranking (lower bound under the threshold)
  void add(const SearchStats& o) {
    queries += o.queries;
    clusters_probed += o.clusters_probed;
    codes_scanned += o.codes_scanned;
    reranked += o.reranked;
    candidates += o.candidates;
  }
};

struct BuildTimings {
  double train_ms = 0, assign_ms = 0, encode_ms = 0;
};

struct MemoryUsage {
  size_t codes = 0, factors = 0, ids = 0, vectors = 0, centroids = 0, other = 0;
  size_t mapped = 0;  // bytes of the above that live in a file mapping
  size_t total() const { return codes + factors + ids + vectors + centroids + other; }
};

class SearchScratch;
struct EstimateParams;
namespace persist {
class Blob;
class Container;
class ContainerWriter;
}  // namespace persist

// One cluster's vectors. They point into the index's base block (built,
// read or mapped) until the cluster is changed by add/remove; then the
// cluster copies itself into its own growable arrays.
struct Cluster {
  uint32_t count = 0;
  const uint8_t* codes = nullptr;  // full 32-vector FastScan blocks, then a compact tail
  const Factor* factors = nullptr;
  const uint32_t* ids32 = nullptr;  // exactly one of ids32 / ids64 is used
  const uint64_t* ids64 = nullptr;
  const float* vectors = nullptr;   // null when the index keeps no vectors
  bool owned = false;
  std::vector<uint8_t> own_codes;
  std::vector<Factor> own_factors;
  std::vector<uint32_t> own_ids32;
  std::vector<uint64_t> own_ids64;
  std::vector<float> own_vectors;
  int64_t id(size_t i) const { return ids64 ? static_cast<int64_t>(ids64[i]) : static_cast<int64_t>(ids32[i]); }
};

class IvfRabitqIndex {
 public:
  // data: n x dim row-major; copied into the index.
  static std::unique_ptr<IvfRabitqIndex> build(const float* data, size_t n, const BuildParams& params,
                                               ThreadPool& pool);
  // Parse a saved index (see docs/FORMAT.md). name is used in error messages.
  // lazy: leave the checksums of the big arrays for verify() (mmap loads).
  static std::unique_ptr<IvfRabitqIndex> load(std::shared_ptr<persist::Blob> blob, const std::string& name, bool lazy);
  ~IvfRabitqIndex();

  // Atomic save (temporary file, fsync, rename, fsync folder) and in-memory form.
  void save(const std::string& path) const;
  std::vector<uint8_t> to_bytes() const;
  // Checks the checksums load() left for later; throws on a mismatch.
  void verify() const;

  size_t dim() const { return dim_; }
  size_t padded_dim() const { return padded_dim_; }
  size_t size() const;
  size_t num_clusters() const { return num_clusters_; }
  Metric metric() const { return metric_; }
  bool ids64() const { return ids64_; }
  bool has_vectors() const { return has_vectors_; }
  RotationKind rotation_kind() const { return rotation_.kind(); }
  const std::vector<float>& centroids() const { return centroids_; }
  BuildTimings timings() const { return timings_; }
  MemoryUsage memory_usage() const;

  // One query; ids/dists hold k entries each (id -1, +inf distance when
  // fewer than k vectors qualify). Distances are in the metric's terms:
  // squared L2, 1 - cos, or the inner product (largest first).
  void search(const float* query, const SearchParams& sp, int64_t* ids, float* dists, SearchStats* stats) const;
  // nq queries on the pool; outputs nq*k. per_query (optional, nq entries).
  void search_batch(const float* queries, size_t nq, const SearchParams& sp, int64_t* ids, float* dists,
                    SearchStats* total, SearchStats* per_query, ThreadPool& pool, size_t threads) const;

  // Adds n vectors (validated first: finite, non-zero under cosine, ids new
  // and distinct; on any error the index is unchanged). Ids: one of ids32 /
  // ids64 matching the index's id width, or neither for the next free ids.
  void add(const float* data, size_t n, const uint32_t* ids32, const uint64_t* ids64, ThreadPool& pool,
           size_t threads);
  // Removes the vectors with these ids; returns how many were present.
  size_t remove(const uint64_t* ids, size_t n);
  bool contains(uint64_t id) const;
  // Re-packs every cluster into one contiguous block, sorted by distance to
  // its centroid, releasing the space of removed vectors and mapped pages.
  void compact();

  // RaBitQ estimate and error bound of the internal distance for every
  // vector (tests). Outputs are indexed by id and hold out_len entries; an id
  // at or past out_len (caller ids, or after remove) is a kRange error.
  void estimate_all(const float* query, float* estimates, float* bounds, bool bitplane,
                    size_t out_len = SIZE_MAX) const;

 private:
  friend class SearchScratch;
  IvfRabitqIndex() = default;
  void init_geometry(size_t dim);
  void encode_vector(size_t c, const float* x, float* scratch, uint8_t* code_bytes, Factor* f) const;
  void search_with(SearchScratch& s, const float* query, const float* coarse, const SearchParams& sp, int64_t* ids,
                   float* dists, SearchStats* stats) const;
  void prepare_cluster_query(SearchScratch& s, size_t c, bool bitplane) const;
  void estimate_block(SearchScratch& s, const Cluster& cl, size_t b0, size_t nb, bool bitplane,
                      const EstimateParams& ep) const;
  void unpack_code(const Cluster& cl, size_t local, uint64_t* bits) const;
  void read_code(const Cluster& cl, size_t local, uint8_t* bytes) const;
  void write_code(Cluster& cl, size_t local, const uint8_t* bytes);
  void resize_codes(Cluster& cl, size_t new_count);
  void own_cluster(Cluster& cl);
  const uint8_t* scan_block(const Cluster& cl, size_t local, uint8_t* scratch) const;
  const float* prepare_query(const float* query, float* normalized) const;
  float to_metric(float internal, float qnorm2) const;
  void build_id_map() const;
  void point_clusters_at_base();
  void write_sections(persist::ContainerWriter& w) const;
  void check_search_params(const SearchParams& sp) const;
  // Inner product: probe the clusters whose centroid has the largest <q, c>
  // (the residual decomposition <x,q> = <c,q> + <x-c,q>), not the nearest.
  // With L2 probing, recall@10 was 0 at nprobe 40 of 200 on data whose norms
  // vary (the largest inner products live in clusters far from the query).
  bool probe_by_ip() const { return metric_ == Metric::kInnerProduct; }

  size_t dim_ = 0, padded_dim_ = 0, words_ = 0, npairs_ = 0, num_clusters_ = 0;
  uint64_t seed_ = 0;
  Metric metric_ = Metric::kL2;
  bool ids64_ = false, has_vectors_ = true;
  float quant_sqrt_ = 0;  // sqrt(D/2): typical sqrt(popcount) for the query-quantization bound
  Rotation rotation_;
  std::vector<float> centroids_;          // num_clusters x dim
  std::vector<float> rotated_centroids_;  // num_clusters x padded_dim
  CentroidTiles tiles_;
  std::vector<float> rounding_offsets_;  // randomized rounding of the query, rows x padded_dim
  std::vector<Cluster> clusters_;
  // Base block the clusters point into: arrays made by build/compact, or a
  // loaded file (read or mapped) kept alive by blob_.
  HugeVector<uint8_t> base_codes_;
  HugeVector<Factor> base_factors_;
  HugeVector<uint32_t> base_ids32_;
  HugeVector<uint64_t> base_ids64_;
  HugeVector<float> base_vectors_;
  std::shared_ptr<persist::Blob> blob_;
  std::shared_ptr<persist::Container> container_;  // for verify() of lazily checked sections
  bool blob_mapped_ = false;
  const uint8_t* blob_codes_ = nullptr;
  const Factor* blob_factors_ = nullptr;
  const uint32_t* blob_ids32_ = nullptr;
  const uint64_t* blob_ids64_ = nullptr;
  const float* blob_vectors_ = nullptr;
  std::string blob_name_;
  size_t n_ = 0;
  uint64_t next_id_ = 0;  // smallest id above every id ever used (default ids for add)
  // id -> (cluster << 32 | position), made on first use by add/remove/contains.
  mutable std::unique_ptr<std::unordered_map<uint64_t, uint64_t>> id_map_;
  mutable std::mutex id_map_mu_;
  // Searches share, add/remove/compact are exclusive.
  mutable std::shared_mutex mu_;
  BuildTimings timings_;
};

}  // namespace rabitq
