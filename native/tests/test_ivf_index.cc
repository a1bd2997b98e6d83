// IvfRabitqIndex end to end: build on clustered random data, search with
// every cluster probed, and compare with brute force.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <set>
#include <thread>
#include <vector>

#include "common.h"
#include "ivf_index.h"
#include "kernels/kernels.h"
#include "testing.h"

using rabitq::SimdLevel;
using rabitq_test::Rng;

namespace {

using Data = rabitq_test::BlobData;

// Gaussian blobs around random centres; queries drawn from the same blobs.
Data clustered(size_t n, size_t nq, size_t dim, size_t blobs, size_t k, uint64_t seed) {
  return rabitq_test::gaussian_blobs(n, nq, dim, blobs, 3.0, k, seed);
}

double recall(const std::vector<std::vector<int64_t>>& truth, const std::vector<int64_t>& ids, size_t k) {
  size_t hit = 0;
  for (size_t q = 0; q < truth.size(); ++q) {
    std::set<int64_t> t(truth[q].begin(), truth[q].end());
    for (size_t i = 0; i < k; ++i) hit += t.count(ids[q * k + i]);
  }
  return double(hit) / double(truth.size() * k);
}

void check_index(const Data& d, rabitq::RotationKind rotation, size_t clusters, const char* what) {
  rabitq::ThreadPool pool(3);
  const size_t k = 10;
  const SimdLevel before = rabitq::active_level();
  for (SimdLevel l : {SimdLevel::kScalar, SimdLevel::kAvx2, SimdLevel::kAvx512}) {
    if (rabitq::kernels_for(l) == nullptr) continue;
    rabitq::set_active_level(l);
    rabitq::BuildParams bp;
    bp.dim = d.dim;
    bp.num_clusters = clusters;
    bp.seed = 5;
    bp.rotation = rotation;
    auto idx = rabitq::IvfRabitqIndex::build(d.base.data(), d.n, bp, pool);
    CHECK((idx->size() == d.n && idx->dim() == d.dim && idx->num_clusters() == clusters));
    CHECK((idx->padded_dim() % 64 == 0 && idx->padded_dim() >= d.dim));
    for (bool bitplane : {false, true}) {
      rabitq::SearchParams sp;
      sp.k = k;
      sp.nprobe = clusters;
      sp.bitplane = bitplane;
      std::vector<int64_t> ids(d.nq * k), bids(d.nq * k);
      std::vector<float> dists(d.nq * k), bdists(d.nq * k);
      rabitq::SearchStats st;
      for (size_t q = 0; q < d.nq; ++q)
        idx->search(d.queries.data() + q * d.dim, sp, ids.data() + q * k, dists.data() + q * k, &st);
      const double r = recall(d.truth, ids, k);
      CHECK_MESSAGE(r >= 0.99, what << " " << rabitq::level_name(l) << (bitplane ? " bitplane" : " fastscan")
                                    << " recall@10 " << r);
      CHECK(st.codes_scanned >= d.nq * d.n);  // every cluster probed
      bool sorted = true;
      for (size_t q = 0; q < d.nq; ++q)
        for (size_t i = 1; i < k; ++i) sorted = sorted && dists[q * k + i - 1] <= dists[q * k + i];
      CHECK(sorted);
      // The batch path returns the same answers.
      rabitq::SearchStats total;
      idx->search_batch(d.queries.data(), d.nq, sp, bids.data(), bdists.data(), &total, nullptr, pool, 0);
      CHECK_MESSAGE(bids == ids, what << " batch ids differ from single-query ids");
      CHECK(total.queries == d.nq);
      // Partial probe lists: the cluster-major pass visits the clusters in
      // another order, with the same answers and per-query counters.
      for (size_t nprobe : {size_t(1), size_t(3), clusters / 2}) {
        sp.nprobe = nprobe;
        rabitq::SearchStats single, batch;
        std::vector<rabitq::SearchStats> per(d.nq);
        for (size_t q = 0; q < d.nq; ++q)
          idx->search(d.queries.data() + q * d.dim, sp, ids.data() + q * k, dists.data() + q * k, &single);
        idx->search_batch(d.queries.data(), d.nq, sp, bids.data(), bdists.data(), &batch, per.data(), pool, 0);
        CHECK_MESSAGE((bids == ids && bdists == dists), what << " batch differs at nprobe " << nprobe);
        CHECK((batch.queries == d.nq && batch.clusters_probed == single.clusters_probed &&
               batch.codes_scanned == single.codes_scanned && batch.clusters_probed == d.nq * nprobe));
        uint64_t reranked = 0;
        for (const auto& p : per) reranked += p.reranked;
        CHECK(reranked == batch.reranked);
      }
    }
    // Estimates are finite and the bounds non-negative.
    std::vector<float> est(d.n), bound(d.n);
    idx->estimate_all(d.queries.data(), est.data(), bound.data(), false);
    bool finite = true;
    for (size_t i = 0; i < d.n; ++i)
      finite = finite && std::isfinite(est[i]) && std::isfinite(bound[i]) && bound[i] >= 0;
    CHECK(finite);
  }
  rabitq::set_active_level(before);
}

TEST_CASE("FHT rotation, 100-d clustered data: recall@10 >= 0.99 at full nprobe" * doctest::test_suite("ivf_index")) {
  const Data d = clustered(6000, 60, 100, 24, 10, 101);
  check_index(d, rabitq::RotationKind::kFht, 32, "fht/100d");
}

TEST_CASE("dense rotation, 64-d: recall@10 >= 0.99 at full nprobe" * doctest::test_suite("ivf_index")) {
  const Data d = clustered(3000, 40, 64, 12, 10, 202);
  check_index(d, rabitq::RotationKind::kDense, 16, "dense/64d");
}

TEST_CASE("odd sizes: 1 cluster, tiny dims, k above a cluster's size" * doctest::test_suite("ivf_index")) {
  rabitq::ThreadPool pool(2);
  for (size_t dim : {1, 3, 65}) {
    const Data d = clustered(70, 5, dim, 3, 10, 300 + dim);
    for (size_t clusters : {1, 7}) {
      rabitq::BuildParams bp;
      bp.dim = dim;
      bp.num_clusters = clusters;
      auto idx = rabitq::IvfRabitqIndex::build(d.base.data(), d.n, bp, pool);
      rabitq::SearchParams sp;
      sp.k = 10;
      sp.nprobe = clusters;
      std::vector<int64_t> ids(d.nq * 10);
      std::vector<float> dists(d.nq * 10);
      for (size_t q = 0; q < d.nq; ++q)
        idx->search(d.queries.data() + q * dim, sp, ids.data() + q * 10, dists.data() + q * 10, nullptr);
      CHECK_MESSAGE(recall(d.truth, ids, 10) >= 0.99, "dim=" << dim << " clusters=" << clusters);
    }
  }
}

TEST_CASE("invalid parameters throw RangeError-kind errors" * doctest::test_suite("ivf_index")) {
  rabitq::ThreadPool pool(1);
  std::vector<float> v(40, 1.f);
  rabitq::BuildParams bp;
  bp.dim = 4;
  bp.num_clusters = 11;  // more than the 10 vectors
  CHECK_THROWS_AS(rabitq::IvfRabitqIndex::build(v.data(), 10, bp, pool), rabitq::Error);
  bp.num_clusters = 2;
  CHECK_THROWS_AS(rabitq::IvfRabitqIndex::build(v.data(), 0, bp, pool), rabitq::Error);
  v[7] = std::nanf("");
  CHECK_THROWS_AS(rabitq::IvfRabitqIndex::build(v.data(), 10, bp, pool), rabitq::Error);
}

TEST_CASE("issue 14: components above 1e15 and dense rotations above dim 2048 are refused" *
          doctest::test_suite("ivf_index")) {
  rabitq::ThreadPool pool(1);
  std::vector<float> v(40, 0.5f);
  rabitq::BuildParams bp;
  bp.dim = 4;
  bp.num_clusters = 2;
  v[7] = -1e20f;  // finite, but its square is not
  CHECK_THROWS_WITH_AS(rabitq::IvfRabitqIndex::build(v.data(), 10, bp, pool), doctest::Contains("at row 1, column 3"),
                       rabitq::Error);
  v[7] = 1e15f;
  CHECK_NOTHROW(rabitq::IvfRabitqIndex::build(v.data(), 10, bp, pool));
  std::vector<float> wide(2 * (rabitq::kMaxDenseRotationDim + 1), 0.5f);
  bp.dim = rabitq::kMaxDenseRotationDim + 1;
  bp.num_clusters = 1;
  bp.rotation = rabitq::RotationKind::kDense;
  CHECK_THROWS_WITH_AS(rabitq::IvfRabitqIndex::build(wide.data(), 2, bp, pool),
                       doctest::Contains("limited to dim <= 2048"), rabitq::Error);
}

TEST_CASE("issue 14: a query far from all data still gets k results, at every SIMD level" *
          doctest::test_suite("ivf_index")) {
  // Vectors in [-0.5, 0.5], queries of 1e6..1e15: float rounding of the
  // estimate exceeds the error bound, which used to leave no candidate.
  rabitq::ThreadPool pool(2);
  const size_t dim = 16, n = 2000, k = 3;
  Rng rng(14);
  std::vector<float> v(n * dim);
  for (float& x : v) x = static_cast<float>(rng.uniform() - 0.5);
  const SimdLevel before = rabitq::active_level();
  for (unsigned bits : {1u, 4u}) {
    rabitq::BuildParams bp;
    bp.dim = dim;
    bp.bits = bits;
    auto idx = rabitq::IvfRabitqIndex::build(v.data(), n, bp, pool);
    for (SimdLevel l : {SimdLevel::kScalar, SimdLevel::kAvx2, SimdLevel::kAvx512}) {
      if (rabitq::kernels_for(l) == nullptr) continue;
      rabitq::set_active_level(l);
      for (float value : {1e6f, 1e7f, 1e15f, -1e15f}) {
        std::vector<float> q(dim, value);
        rabitq::SearchParams sp;
        sp.k = k;
        sp.nprobe = idx->num_clusters();
        std::vector<int64_t> ids(k);
        std::vector<float> dists(k);
        idx->search(q.data(), sp, ids.data(), dists.data(), nullptr);
        for (size_t i = 0; i < k; ++i) CHECK_MESSAGE(ids[i] >= 0, "value=" << value << " bits=" << bits);
      }
    }
  }
  rabitq::set_active_level(before);
}

// size() is read by JS (index.size) while add/remove run on libuv threads:
// it must not read n_ outside the lock (a data race ThreadSanitizer reports).
TEST_CASE("size() and memory_usage() while add/remove run on another thread" * doctest::test_suite("ivf_index")) {
  rabitq::ThreadPool pool(2);
  const Data d = clustered(400, 0, 8, 4, 1, 404);
  rabitq::BuildParams bp;
  bp.dim = 8;
  bp.num_clusters = 4;
  auto idx = rabitq::IvfRabitqIndex::build(d.base.data(), 200, bp, pool);
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (size_t r = 0; r < 20; ++r) {
      idx->add(d.base.data() + (200 + r * 10) * 8, 10, nullptr, nullptr, pool, 1);
      const uint64_t gone = r;
      idx->remove(&gone, 1);
    }
    done = true;
  });
  size_t last = 0;
  while (!done) {
    last = idx->size();
    CHECK((last >= 180 && last <= 400));
    (void)idx->memory_usage();
  }
  writer.join();
  CHECK(idx->size() == 200 + 200 - 20);
}

}  // namespace
