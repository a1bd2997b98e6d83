// The IVF-RaBitQ index: k-means partitions, 1-bit RaBitQ codes of the rotated
// residuals stored per cluster in FastScan blocks, and exact re-ranking where
// the RaBitQ error bound says a vector may still enter the top k.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

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

struct BuildParams {
  size_t dim = 0;
  size_t num_clusters = 0;  // 0 = about 4 * sqrt(n)
  size_t kmeans_iterations = 10;
  size_t train_points_per_cluster = 256;
  uint64_t seed = 42;
  RotationKind rotation = RotationKind::kFht;
  size_t threads = 0;  // 0 = whole pool
  // phase: 0 train, 1 assign, 2 encode.
  std::function<void(int phase, size_t done, size_t total)> progress;
};

struct SearchParams {
  size_t k = 10;
  size_t nprobe = 16;
  bool rerank = true;
  float epsilon = 1.9f;     // multiplier of the error bound
  bool bitplane = false;    // reference estimator path (same estimates as FastScan)
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
  size_t total() const { return codes + factors + ids + vectors + centroids + other; }
};

class SearchScratch;

class IvfRabitqIndex {
 public:
  // data: n x dim row-major; copied into the index.
  static std::unique_ptr<IvfRabitqIndex> build(const float* data, size_t n, const BuildParams& params,
                                               ThreadPool& pool);
  ~IvfRabitqIndex();

  size_t dim() const { return dim_; }
  size_t padded_dim() const { return padded_dim_; }
  size_t size() const { return n_; }
  size_t num_clusters() const { return num_clusters_; }
  const std::vector<float>& centroids() const { return centroids_; }
  BuildTimings timings() const { return timings_; }
  MemoryUsage memory_usage() const;

  // One query; ids/dists hold k entries each. Uses a per-thread scratch.
  void search(const float* query, const SearchParams& sp, int32_t* ids, float* dists, SearchStats* stats) const;
  // nq queries on the pool; outputs nq*k. per_query (optional, nq entries).
  void search_batch(const float* queries, size_t nq, const SearchParams& sp, int32_t* ids, float* dists,
                    SearchStats* total, SearchStats* per_query, ThreadPool& pool, size_t threads) const;

  // RaBitQ estimate and error bound of ||q - x||^2 for every vector (tests).
  // Outputs are indexed by vector id.
  void estimate_all(const float* query, float* estimates, float* bounds, bool bitplane) const;

 private:
  friend class SearchScratch;
  IvfRabitqIndex() = default;
  void encode_cluster(size_t c, const float* rotated, float* scratch);
  void search_with(SearchScratch& s, const float* query, const float* coarse, const SearchParams& sp, int32_t* ids,
                   float* dists, SearchStats* stats) const;
  void prepare_cluster_query(SearchScratch& s, size_t c, bool bitplane) const;
  void unpack_code(size_t cluster, size_t pos, uint64_t* bits) const;
  const uint8_t* code_block(size_t c, size_t local, size_t* stride) const;
  uint8_t* code_block(size_t c, size_t local, size_t* stride);
  const uint8_t* scan_block(size_t c, size_t local, uint8_t* scratch) const;

  size_t dim_ = 0, padded_dim_ = 0, words_ = 0, npairs_ = 0, n_ = 0, num_clusters_ = 0;
  uint64_t seed_ = 0;
  float quant_sqrt_ = 0;  // sqrt(D/2): typical sqrt(popcount) for the query-quantization bound
  Rotation rotation_;
  std::vector<float> centroids_;          // num_clusters x dim
  std::vector<float> rotated_centroids_;  // num_clusters x padded_dim
  std::vector<float> rotated_centroid_sums_;
  CentroidTiles tiles_;
  std::vector<uint32_t> offsets_;        // cluster c holds positions [offsets_[c], offsets_[c+1])
  std::vector<uint8_t> codes_;           // cluster c at offsets_[c] * npairs_: FastScan blocks, compact tail
  std::vector<Factor> factors_;          // by position
  std::vector<int32_t> ids_;             // by position
  std::vector<float> vectors_;           // by position, for re-ranking
  std::vector<float> rounding_offsets_;  // randomized rounding of the query, padded_dim
  BuildTimings timings_;
};

}  // namespace rabitq
