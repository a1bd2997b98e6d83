// exact_knn against a naive double-precision loop, at every SIMD level.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <utility>
#include <vector>

#include "exact_knn.h"
#include "kernels/kernels.h"
#include "testing.h"

using rabitq::SimdLevel;
using rabitq_test::Rng;

namespace {

struct Naive {
  std::vector<int32_t> ids;
  std::vector<double> dists;  // all n distances of each query, by rank
};

// Full ranking of the base for every query, by (distance, id).
std::vector<Naive> naive_rank(const std::vector<float>& base, const std::vector<float>& queries, size_t dim) {
  const size_t n = base.size() / dim, nq = queries.size() / dim;
  std::vector<Naive> out(nq);
  for (size_t q = 0; q < nq; ++q) {
    std::vector<std::pair<double, int32_t>> all(n);
    for (size_t i = 0; i < n; ++i) {
      double s = 0;
      for (size_t t = 0; t < dim; ++t) {
        double d = double(queries[q * dim + t]) - double(base[i * dim + t]);
        s += d * d;
      }
      all[i] = {s, static_cast<int32_t>(i)};
    }
    std::sort(all.begin(), all.end());
    for (auto& e : all) {
      out[q].ids.push_back(e.second);
      out[q].dists.push_back(e.first);
    }
  }
  return out;
}

// Compares one query's k results with the naive ranking. Distances must agree
// rank by rank; an id may differ from the naive one only where the two
// candidates' distances are within float rounding of each other.
void compare(const Naive& ref, const int32_t* ids, const float* dists, size_t k, const char* what, size_t q) {
  const size_t n = ref.ids.size();
  for (size_t i = 0; i < k; ++i) {
    if (i >= n) {
      CHECK_MESSAGE((ids[i] == -1 && std::isinf(dists[i]) && dists[i] > 0), what << " q=" << q << " slot " << i);
      continue;
    }
    const double want = ref.dists[i];
    const double tol = 1e-5 * want + 1e-6;
    CHECK_MESSAGE(std::fabs(double(dists[i]) - want) <= tol,
                  what << " q=" << q << " rank " << i << " dist " << dists[i] << " want " << want);
    if (ids[i] != ref.ids[i]) {
      // Acceptable only for a near tie: the returned id's true distance is
      // within tolerance of the rank's distance.
      auto it = std::find(ref.ids.begin(), ref.ids.end(), ids[i]);
      const bool found = it != ref.ids.end();
      const double its = found ? ref.dists[size_t(it - ref.ids.begin())] : 1e300;
      CHECK_MESSAGE(std::fabs(its - want) <= tol,
                    what << " q=" << q << " rank " << i << " id " << ids[i] << " want " << ref.ids[i]);
    }
    if (i > 0) CHECK_MESSAGE(dists[i - 1] <= dists[i], what << " not sorted at q=" << q << " rank " << i);
  }
}

std::vector<float> random_vectors(size_t n, size_t dim, Rng& rng) {
  std::vector<float> v(n * dim);
  for (auto& x : v) x = rng.uniform(-1.f, 1.f);
  return v;
}

TEST_CASE("matches a naive loop at every level, across base chunks and query blocks" *
          doctest::test_suite("exact_knn")) {
  rabitq::ThreadPool pool(3);
  Rng rng(42);
  const SimdLevel before = rabitq::active_level();
  struct Shape {
    size_t n, nq, dim, k;
  };
  // 5000 > one base chunk (4096); 37 queries = two full blocks of 16 + 5.
  for (Shape sh : {Shape{5000, 37, 37, 10}, Shape{300, 20, 128, 1}, Shape{1000, 17, 3, 25}, Shape{200, 5, 960, 10}}) {
    auto base = random_vectors(sh.n, sh.dim, rng);
    auto queries = random_vectors(sh.nq, sh.dim, rng);
    const auto ref = naive_rank(base, queries, sh.dim);
    for (SimdLevel l : {SimdLevel::kScalar, SimdLevel::kAvx2, SimdLevel::kAvx512}) {
      if (rabitq::kernels_for(l) == nullptr) continue;
      rabitq::set_active_level(l);
      for (size_t threads : {1, 0}) {
        std::vector<int32_t> ids(sh.nq * sh.k, -7);
        std::vector<float> dists(sh.nq * sh.k, -7.f);
        rabitq::exact_knn(base.data(), sh.n, queries.data(), sh.nq, sh.dim, sh.k, ids.data(), dists.data(), pool,
                          threads);
        for (size_t q = 0; q < sh.nq; ++q)
          compare(ref[q], ids.data() + q * sh.k, dists.data() + q * sh.k, sh.k, rabitq::level_name(l), q);
      }
    }
  }
  rabitq::set_active_level(before);
}

TEST_CASE("k larger than the base pads with -1 and +inf" * doctest::test_suite("exact_knn")) {
  rabitq::ThreadPool pool(2);
  Rng rng(7);
  auto base = random_vectors(5, 8, rng);
  auto queries = random_vectors(3, 8, rng);
  const auto ref = naive_rank(base, queries, 8);
  std::vector<int32_t> ids(3 * 9);
  std::vector<float> dists(3 * 9);
  rabitq::exact_knn(base.data(), 5, queries.data(), 3, 8, 9, ids.data(), dists.data(), pool, 0);
  for (size_t q = 0; q < 3; ++q) compare(ref[q], ids.data() + q * 9, dists.data() + q * 9, 9, "pad", q);
}

TEST_CASE("exact ties are ordered by id" * doctest::test_suite("exact_knn")) {
  rabitq::ThreadPool pool(2);
  Rng rng(9);
  const size_t dim = 16, n = 64;
  // Eight copies each of eight distinct vectors, interleaved.
  auto distinct = random_vectors(8, dim, rng);
  std::vector<float> base(n * dim);
  for (size_t i = 0; i < n; ++i)
    std::copy(distinct.begin() + (i % 8) * dim, distinct.begin() + (i % 8 + 1) * dim, base.begin() + i * dim);
  std::vector<float> query(distinct.begin() + 3 * dim, distinct.begin() + 4 * dim);
  std::vector<int32_t> ids(12);
  std::vector<float> dists(12);
  rabitq::exact_knn(base.data(), n, query.data(), 1, dim, 12, ids.data(), dists.data(), pool, 0);
  // Copies of vector 3 are ids 3, 11, 19, ...: distance 0, ascending ids.
  for (size_t i = 0; i < 8; ++i) CHECK_MESSAGE((ids[i] == int32_t(3 + 8 * i) && dists[i] == 0.f), "rank " << i);
  for (size_t i = 9; i < 12; ++i) CHECK((ids[i - 1] < ids[i] || dists[i - 1] < dists[i]));
}

TEST_CASE("a query equal to a base vector finds it at distance 0" * doctest::test_suite("exact_knn")) {
  rabitq::ThreadPool pool(2);
  Rng rng(3);
  const size_t dim = 100, n = 2000;
  auto base = random_vectors(n, dim, rng);
  std::vector<float> queries;
  std::vector<int32_t> expect;
  for (size_t i = 0; i < n; i += 97) {
    queries.insert(queries.end(), base.begin() + i * dim, base.begin() + (i + 1) * dim);
    expect.push_back(static_cast<int32_t>(i));
  }
  const size_t nq = expect.size();
  std::vector<int32_t> ids(nq * 3);
  std::vector<float> dists(nq * 3);
  rabitq::exact_knn(base.data(), n, queries.data(), nq, dim, 3, ids.data(), dists.data(), pool, 0);
  for (size_t q = 0; q < nq; ++q) CHECK_MESSAGE((ids[q * 3] == expect[q] && dists[q * 3] == 0.f), "q=" << q);
}

}  // namespace
