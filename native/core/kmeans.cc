#include "kmeans.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>

#include "common.h"
#include "kernels/kernels.h"

namespace rabitq {

namespace {
constexpr size_t kPointBlock = 64;  // points per work item in the blocked distance step
}

CentroidTiles::CentroidTiles(const float* centroids, size_t num, size_t dim, bool half)
    : num_(num), dim_(dim), tiles_((num + 15) / 16), half_(half) {
  ct_.assign(tiles_ * dim * 16, 0.f);
  norms_.assign(tiles_ * 16, std::numeric_limits<float>::infinity());
  const Kernels& k = active_kernels();
  for (size_t c = 0; c < num; ++c) {
    const float* v = centroids + c * dim;
    const size_t tile = c / 16, j = c % 16;
    float* t = &ct_[tile * dim * 16];
    for (size_t d = 0; d < dim; ++d) t[d * 16 + j] = v[d];
    norms_[c] = k.dot(v, v, dim);
  }
  if (half_) {
    float maxabs = 0.f;
    for (float v : ct_) maxabs = std::max(maxabs, std::fabs(v));
    scale_ = maxabs > 0.f ? maxabs / 16384.f : 1.f;
    ct16_.resize(ct_.size());
    for (size_t i = 0; i < ct_.size(); ++i) ct16_[i] = float_to_half(ct_[i] / scale_);
    std::vector<float>().swap(ct_);
  }
}

void CentroidTiles::dots(const float* xs, size_t np, size_t tile, float* out) const {
  const Kernels& k = active_kernels();
  if (!half_) {
    k.dot_tile16(xs, np, dim_, &ct_[tile * dim_ * 16], out);
    return;
  }
  k.dot_tile16_f16(xs, np, dim_, &ct16_[tile * dim_ * 16], out);
  for (size_t i = 0; i < np * 16; ++i) out[i] *= scale_;
}

namespace {
// o[j] = norm[j] - 2 * (s[j] * scale): the distances of one tile (restrict:
// the loop vectorizes; with possible aliasing it ran scalar).
inline void tile_distances(const float* __restrict norm, const float* __restrict s, float scale, size_t cnt,
                           float* __restrict o) {
  if (cnt == 16) {
    for (size_t j = 0; j < 16; ++j) o[j] = norm[j] - 2.f * (s[j] * scale);
  } else {
    for (size_t j = 0; j < cnt; ++j) o[j] = norm[j] - 2.f * (s[j] * scale);
  }
}
inline void tile_distances(const float* __restrict norm, const float* __restrict s, size_t cnt, float* __restrict o) {
  for (size_t j = 0; j < cnt; ++j) o[j] = norm[j] - 2.f * s[j];
}
}  // namespace

void CentroidTiles::partial_distances(const float* xs, size_t np, float* out, float* scratch,
                                      bool inner_product) const {
  // One pass per tile after the kernel: the half tiles' scale and the norm
  // term together (the same operations as dots() then the subtraction, so
  // the values are identical). This runs once per query over every
  // centroid, a fixed cost of each search.
  static const float zeros[16] = {};
  const Kernels& k = active_kernels();
  for (size_t tile = 0; tile < tiles_; ++tile) {
    const float* nrm = inner_product ? zeros : &norms_[tile * 16];
    const size_t base = tile * 16;
    const size_t cnt = std::min<size_t>(16, num_ - base);
    if (half_)
      k.dot_tile16_f16(xs, np, dim_, &ct16_[tile * dim_ * 16], scratch);
    else
      k.dot_tile16(xs, np, dim_, &ct_[tile * dim_ * 16], scratch);
    for (size_t p = 0; p < np; ++p) {
      if (half_)
        tile_distances(nrm, scratch + p * 16, scale_, cnt, out + p * num_ + base);
      else
        tile_distances(nrm, scratch + p * 16, cnt, out + p * num_ + base);
    }
  }
}

void CentroidTiles::nearest(const float* xs, size_t np, uint32_t* best, float* best_dist, float* scratch) const {
  const Kernels& k = active_kernels();
  for (size_t p = 0; p < np; ++p) {
    best[p] = 0;
    best_dist[p] = std::numeric_limits<float>::infinity();
  }
  for (size_t tile = 0; tile < tiles_; ++tile) {
    dots(xs, np, tile, scratch);
    const float* nrm = &norms_[tile * 16];
    for (size_t p = 0; p < np; ++p) {
      const float* s = scratch + p * 16;
      for (size_t j = 0; j < 16; ++j) {
        float d = nrm[j] - 2.f * s[j];
        if (d < best_dist[p]) {
          best_dist[p] = d;
          best[p] = static_cast<uint32_t>(tile * 16 + j);
        }
      }
    }
  }
  for (size_t p = 0; p < np; ++p) {
    const float* x = xs + p * dim_;
    best_dist[p] = std::max(0.f, best_dist[p] + k.dot(x, x, dim_));
  }
}

void assign_nearest(const float* data, size_t n, size_t dim, const CentroidTiles& tiles, uint32_t* labels, float* dists,
                    ThreadPool& pool, size_t threads, const std::function<void(size_t, size_t)>& progress) {
  const size_t blocks = (n + kPointBlock - 1) / kPointBlock;
  const size_t slots = pool.slots_for(blocks, threads);
  std::vector<std::vector<float>> scratch(slots, std::vector<float>(kPointBlock * 16));
  std::vector<float> tmp_dists(dists ? 0 : n);
  float* dout = dists ? dists : tmp_dists.data();
  std::atomic<size_t> done{0};
  const size_t report_every = std::max<size_t>(1, blocks / 100);
  pool.parallel_for(blocks, threads, [&](size_t b, size_t slot) {
    const size_t start = b * kPointBlock;
    const size_t np = std::min(kPointBlock, n - start);
    tiles.nearest(data + start * dim, np, labels + start, dout + start, scratch[slot].data());
    size_t d = done.fetch_add(1) + 1;
    if (progress && (d % report_every == 0 || d == blocks)) progress(std::min(n, d * kPointBlock), n);
  });
}

std::vector<float> train_kmeans(const float* data, size_t n, size_t dim, const KMeansParams& params, ThreadPool& pool) {
  const size_t k = params.num_clusters;
  RABITQ_THROW_IF_NOT(k >= 1 && k <= n, kRange, "numClusters must be between 1 and the number of vectors");
  std::mt19937_64 rng(params.seed);

  // Training sample: a seeded random subset, copied contiguously.
  size_t ns = std::min(n, std::max(k, params.max_points_per_cluster * k));
  std::vector<float> sample_store;
  const float* sample = data;
  if (ns < n) {
    std::vector<uint32_t> perm(n);
    std::iota(perm.begin(), perm.end(), 0u);
    for (size_t i = 0; i < ns; ++i) {
      size_t j = i + static_cast<size_t>(rng() % (n - i));
      std::swap(perm[i], perm[j]);
    }
    std::sort(perm.begin(), perm.begin() + static_cast<long>(ns));
    sample_store.resize(ns * dim);
    for (size_t i = 0; i < ns; ++i) std::memcpy(&sample_store[i * dim], data + perm[i] * dim, dim * sizeof(float));
    sample = sample_store.data();
  }

  // Initial centroids: k distinct sample points.
  std::vector<float> centroids(k * dim);
  {
    std::vector<uint32_t> perm(ns);
    std::iota(perm.begin(), perm.end(), 0u);
    for (size_t i = 0; i < k; ++i) {
      size_t j = i + static_cast<size_t>(rng() % (ns - i));
      std::swap(perm[i], perm[j]);
      std::memcpy(&centroids[i * dim], sample + perm[i] * dim, dim * sizeof(float));
    }
  }

  std::vector<uint32_t> labels(ns);
  std::vector<float> dists(ns);
  std::vector<uint32_t> order(ns), starts(k + 1);
  std::vector<size_t> counts(k);
  for (size_t it = 0; it < params.iterations; ++it) {
    CentroidTiles tiles(centroids.data(), k, dim);
    assign_nearest(sample, ns, dim, tiles, labels.data(), dists.data(), pool, params.threads, nullptr);
    // Counting sort by label keeps points in index order inside a cluster,
    // so the sums below do not depend on scheduling.
    std::fill(counts.begin(), counts.end(), 0);
    for (size_t i = 0; i < ns; ++i) counts[labels[i]]++;
    starts[0] = 0;
    for (size_t c = 0; c < k; ++c) starts[c + 1] = starts[c] + static_cast<uint32_t>(counts[c]);
    {
      std::vector<uint32_t> pos(starts.begin(), starts.end() - 1);
      for (size_t i = 0; i < ns; ++i) order[pos[labels[i]]++] = static_cast<uint32_t>(i);
    }
    pool.parallel_for(k, params.threads, [&](size_t c, size_t) {
      if (counts[c] == 0) return;
      std::vector<double> acc(dim, 0.0);
      for (uint32_t r = starts[c]; r < starts[c + 1]; ++r) {
        const float* x = sample + static_cast<size_t>(order[r]) * dim;
        for (size_t d = 0; d < dim; ++d) acc[d] += x[d];
      }
      const double inv = 1.0 / static_cast<double>(counts[c]);
      for (size_t d = 0; d < dim; ++d) centroids[c * dim + d] = static_cast<float>(acc[d] * inv);
    });
    // Empty clusters: split the largest one in two, nudging both halves apart.
    for (size_t c = 0; c < k; ++c) {
      if (counts[c] != 0) continue;
      size_t big = static_cast<size_t>(std::max_element(counts.begin(), counts.end()) - counts.begin());
      if (counts[big] < 2) break;
      for (size_t d = 0; d < dim; ++d) {
        float v = centroids[big * dim + d];
        float eps = (static_cast<float>(rng() % 2000) / 1000.f - 1.f) * 1e-3f * (std::fabs(v) + 1e-6f);
        centroids[c * dim + d] = v + eps;
        centroids[big * dim + d] = v - eps;
      }
      counts[c] = counts[big] / 2;
      counts[big] -= counts[c];
    }
    if (params.progress) params.progress(it + 1, params.iterations);
  }
  return centroids;
}

}  // namespace rabitq
