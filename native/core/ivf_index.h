// The IVF-RaBitQ index: k-means partitions, 1-bit RaBitQ codes of the rotated
// residuals stored per cluster in FastScan blocks (with bits > 1 also the
// extra bits of multi-bit codes, which refine the estimate of the vectors the
// 1-bit bound keeps), and exact re-ranking where the error bound says a
// vector may still enter the top k.
//
// This class is the facade: it owns the locks and composes the parts.
//   metric.h            l2 / cosine / ip: query and row preparation, distances
//   quantizer.h         RaBitQ encode, query preparation, block estimate, bound
//   code_layout.h       FastScan blocks of 32 codes (packing)
//   ivf/cluster_store.h per-cluster columns: built / file / owned, growth, compaction
//   ivf/id_map.h        caller ids <-> (cluster, position), id checks, next id
//   ivf/scanner.h       the search loop: probe, scan, candidates, re-rank
//   ivf/format.h        the index's file sections (save/load: ivf_index_io.cc)
//   topk.h, filter.h, validation.h, search_params.h
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "filter.h"
#include "ivf/cluster_store.h"
#include "ivf/id_map.h"
#include "ivf/scanner.h"
#include "kmeans.h"
#include "metric.h"
#include "quantizer.h"
#include "rotation.h"
#include "search_params.h"
#include "thread_pool.h"

namespace rabitq {

struct BuildParams {
  size_t dim = 0;
  size_t num_clusters = 0;  // 0 = about 4 * sqrt(n)
  size_t kmeans_iterations = 10;
  size_t train_points_per_cluster = 256;
  uint64_t seed = 42;
  RotationKind rotation = RotationKind::kFht;
  Metric metric = Metric::kL2;
  bool store_vectors = true;  // false: no exact re-ranking, 4*dim bytes per vector saved
  unsigned bits = 1;          // bits per dimension of the codes, 1..9 (quantizer/ex_code.h)
  size_t threads = 0;         // 0 = whole pool
  // Caller ids, one per vector (at most one of the two; neither = 0..n-1).
  const uint32_t* ids32 = nullptr;
  const uint64_t* ids64 = nullptr;
  // phase: 0 train, 1 assign, 2 encode.
  std::function<void(int phase, size_t done, size_t total)> progress;
};

struct BuildTimings {
  double train_ms = 0, assign_ms = 0, encode_ms = 0;
};

struct MemoryUsage {
  size_t codes = 0, factors = 0, ids = 0, vectors = 0, centroids = 0, other = 0;
  size_t ex_codes = 0;  // extra bits of multi-bit codes and their factors
  size_t mapped = 0;    // bytes of the above that live in a file mapping
  size_t total() const { return codes + factors + ex_codes + ids + vectors + centroids + other; }
};

namespace persist {
class Blob;
class Container;
class ContainerWriter;
}  // namespace persist

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
  size_t padded_dim() const { return quantizer_.padded_dim(); }
  size_t size() const;
  size_t num_clusters() const { return num_clusters_; }
  Metric metric() const { return space_.metric(); }
  bool ids64() const { return store_.ids64(); }
  bool has_vectors() const { return store_.has_vectors(); }
  unsigned bits() const { return quantizer_.bits(); }
  RotationKind rotation_kind() const { return quantizer_.rotation().kind(); }
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
  void add(const float* data, size_t n, const uint32_t* ids32, const uint64_t* ids64, ThreadPool& pool, size_t threads);
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
  IvfRabitqIndex() = default;
  void init_geometry(size_t dim, Metric metric, bool ids64, bool has_vectors, unsigned bits);
  void write_sections(persist::ContainerWriter& w) const;
  IvfScanner scanner() const { return IvfScanner(space_, quantizer_, store_, tiles_); }

  size_t dim_ = 0, num_clusters_ = 0;
  uint64_t seed_ = 0;
  MetricSpace space_;
  RabitqQuantizer quantizer_;
  std::vector<float> centroids_;  // num_clusters x dim
  CentroidTiles tiles_;
  ClusterStore store_;
  // Made on first use by add/remove/contains, under id_map_mu_ (contains
  // runs under the shared lock).
  mutable IdMap id_map_;
  mutable std::mutex id_map_mu_;
  std::shared_ptr<persist::Container> container_;  // for verify() of lazily checked sections
  // Searches share, add/remove/compact are exclusive.
  mutable std::shared_mutex mu_;
  BuildTimings timings_;
};

}  // namespace rabitq
