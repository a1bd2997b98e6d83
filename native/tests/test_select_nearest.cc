// select_nearest (the probe order) against a full sort by (distance, index),
// on every path it takes: few probes, the sampled threshold, the fallback.
#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "ivf/scanner.h"
#include "testing.h"

using rabitq_test::Rng;

namespace {

std::vector<std::pair<float, uint32_t>> reference(const std::vector<float>& d, size_t m) {
  std::vector<std::pair<float, uint32_t>> all;
  for (size_t i = 0; i < d.size(); ++i)
    if (!std::isnan(d[i])) all.push_back({d[i], static_cast<uint32_t>(i)});
  std::sort(all.begin(), all.end());
  all.resize(std::min(m, all.size()));
  return all;
}

}  // namespace

TEST_CASE("select_nearest equals a full sort by (distance, index)" * doctest::test_suite("scanner")) {
  Rng rng(7);
  std::vector<std::pair<float, uint32_t>> out;
  for (size_t n : {1, 7, 8, 63, 64, 65, 100, 511, 512, 1265, 4096}) {
    for (size_t m : {1, 2, 3, 8, 15, 16, 17, 48, 200}) {
      for (int ties = 0; ties < 2; ++ties) {
        std::vector<float> d(n);
        // with ties: few distinct values, so equal distances must be ordered by index
        for (auto& v : d) v = ties ? static_cast<float>(rng.below(5)) : rng.uniform(0.f, 100.f);
        rabitq::select_nearest(d.data(), n, m, out);
        const auto want = reference(d, m);
        CHECK_MESSAGE(out == want, "n=" << n << " m=" << m << " ties=" << ties);
      }
    }
  }
}

TEST_CASE("select_nearest: descending and infinite distances" * doctest::test_suite("scanner")) {
  std::vector<std::pair<float, uint32_t>> out;
  for (size_t n : {64, 1000}) {
    std::vector<float> d(n);
    for (size_t i = 0; i < n; ++i) d[i] = static_cast<float>(n - i);  // every value a new best
    for (size_t m : {1, 5, 16}) {
      rabitq::select_nearest(d.data(), n, m, out);
      CHECK(out == reference(d, m));
    }
    std::fill(d.begin(), d.end(), std::numeric_limits<float>::infinity());
    d[n / 2] = 1.f;
    rabitq::select_nearest(d.data(), n, 3, out);
    CHECK(out == reference(d, 3));
  }
}

// Inner-product distances are negative, and -0 equals +0 (then the index
// decides): the integer keys of the sampled path must order them as the
// float comparison does. NaNs never enter.
TEST_CASE("select_nearest: negative distances, signed zeros, NaN" * doctest::test_suite("scanner")) {
  Rng rng(11);
  std::vector<std::pair<float, uint32_t>> out;
  for (size_t n : {1265, 4096}) {
    for (size_t m : {17, 48, 64}) {
      for (const float lo : {-50.f, 0.f}) {  // with lo 0 the zeros are the nearest, tied
        std::vector<float> d(n);
        for (auto& v : d) v = rng.uniform(lo, 50.f);
        for (size_t i = 0; i < n; i += 7) d[i] = (i / 7) % 2 ? -0.f : 0.f;  // many zeros, both signs
        for (size_t i = 3; i < n; i += 101) d[i] = std::nanf("");
        for (size_t i = 5; i < n; i += 211) d[i] = -std::numeric_limits<float>::infinity();
        rabitq::select_nearest(d.data(), n, m, out);
        CHECK_MESSAGE(out == reference(d, m), "n=" << n << " m=" << m << " lo=" << lo);
        // the zeros' signs must come back as stored
        bool same = true;
        for (const auto& [v, i] : out) same = same && std::signbit(v) == std::signbit(d[i]);
        CHECK(same);
      }
    }
  }
}
