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
