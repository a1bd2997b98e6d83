#include "exact_knn.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "kernels/kernels.h"
#include "kmeans.h"
#include "topk.h"

namespace rabitq {

namespace {
constexpr size_t kQueryBlock = 16;
constexpr size_t kBaseBlock = 4096;  // base rows per tile set: keeps a chunk of tiles in L2
}  // namespace

void exact_knn(const float* base, size_t n, const float* queries, size_t nq, size_t dim, size_t k, int32_t* ids,
               float* dists, ThreadPool& pool, size_t threads) {
  const Kernels& kern = active_kernels();
  const size_t nchunks = (n + kBaseBlock - 1) / kBaseBlock;
  std::vector<CentroidTiles> chunks(nchunks);
  pool.parallel_for(nchunks, threads, [&](size_t c, size_t) {
    const size_t start = c * kBaseBlock;
    chunks[c] = CentroidTiles(base + start * dim, std::min(kBaseBlock, n - start), dim);
  });
  // Keep a few more candidates than k, then re-score them exactly.
  const size_t keep = std::min(n, k + 8 + k / 4);
  const size_t qblocks = (nq + kQueryBlock - 1) / kQueryBlock;
  pool.parallel_for(qblocks, threads, [&](size_t qb, size_t) {
    const size_t q0 = qb * kQueryBlock;
    const size_t np = std::min(kQueryBlock, nq - q0);
    std::vector<float> part(np * kBaseBlock), scratch(np * 16);
    std::vector<TopK<int32_t>> heaps(np);
    for (auto& h : heaps) h.reset(keep);
    for (size_t c = 0; c < nchunks; ++c) {
      const size_t cnt = chunks[c].num();
      chunks[c].partial_distances(queries + q0 * dim, np, part.data(), scratch.data());
      for (size_t p = 0; p < np; ++p) {
        auto& h = heaps[p];
        const float* row = part.data() + p * cnt;
        for (size_t j = 0; j < cnt; ++j) h.push(row[j], static_cast<int32_t>(c * kBaseBlock + j));
      }
    }
    for (size_t p = 0; p < np; ++p) {
      const float* q = queries + (q0 + p) * dim;
      auto& h = heaps[p].entries();
      for (auto& e : h) e.first = kern.l2sq(q, base + static_cast<size_t>(e.second) * dim, dim);
      std::sort(h.begin(), h.end());
      for (size_t i = 0; i < k; ++i) {
        const size_t o = (q0 + p) * k + i;
        if (i < h.size()) {
          ids[o] = h[i].second;
          dists[o] = h[i].first;
        } else {
          ids[o] = -1;
          dists[o] = std::numeric_limits<float>::infinity();
        }
      }
    }
  });
}

}  // namespace rabitq
