// k-means for the IVF partition, on the SIMD kernels and the thread pool.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "thread_pool.h"

namespace rabitq {

// Centroids stored transposed in tiles of 16 (ct[t*16 + j]) so that the
// distance step is a blocked matrix product (kernels.dot_tile16) and not one
// memory-bound dot product per pair.
class CentroidTiles {
 public:
  CentroidTiles() = default;
  // half: store the tiles as IEEE half floats (scaled so the largest
  // magnitude maps to 2^14); used for the search-time coarse step, where the
  // scan is memory-bound and half precision only perturbs near-ties.
  CentroidTiles(const float* centroids, size_t num, size_t dim, bool half = false);

  size_t num() const { return num_; }
  size_t dim() const { return dim_; }
  size_t num_tiles() const { return tiles_; }

  // out[q*num + c] = ||x_q - c||^2 - ||x_q||^2 (rank-equivalent) for np points;
  // with inner_product, -2 <x_q, c> (ascending = largest inner product first).
  // scratch must hold np*16 floats.
  void partial_distances(const float* xs, size_t np, float* out, float* scratch, bool inner_product = false) const;
  // Nearest centroid (and its true squared distance) for np points.
  void nearest(const float* xs, size_t np, uint32_t* best, float* best_dist, float* scratch) const;

 private:
  size_t num_ = 0, dim_ = 0, tiles_ = 0;
  void dots(const float* xs, size_t np, size_t tile, float* out) const;
  bool half_ = false;
  float scale_ = 1.f;      // half tiles hold centroid / scale_
  std::vector<float> ct_;  // tiles_ * dim_ * 16
  std::vector<uint16_t> ct16_;
  std::vector<float> norms_;  // tiles_ * 16; padding centroids get +inf
};

struct KMeansParams {
  size_t num_clusters = 0;
  size_t iterations = 10;
  size_t max_points_per_cluster = 256;  // training sample = min(n, this * k)
  uint64_t seed = 1234;
  size_t threads = 0;  // 0 = whole pool
  std::function<void(size_t done, size_t total)> progress;
};

// Returns num_clusters * dim centroids. Deterministic for a seed whatever the
// thread count (per-cluster sums are taken in point order).
std::vector<float> train_kmeans(const float* data, size_t n, size_t dim, const KMeansParams& params, ThreadPool& pool);

// Nearest centroid for every point, in parallel blocks.
void assign_nearest(const float* data, size_t n, size_t dim, const CentroidTiles& tiles, uint32_t* labels, float* dists,
                    ThreadPool& pool, size_t threads, const std::function<void(size_t done, size_t total)>& progress);

}  // namespace rabitq
