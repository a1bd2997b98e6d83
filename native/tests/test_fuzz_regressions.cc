// Defects found by the fuzzers (native/fuzz/) and the property tests
// (test/properties.test.ts), one case each; meant to run under ASan + UBSan
// too (the ctest build with RABITQ_SANITIZE=ON), where the undefined
// behaviour of the second case aborts.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "common.h"
#include "exact_knn.h"
#include "ivf/format.h"
#include "ivf_index.h"
#include "persist/blob.h"
#include "persist/crc32c.h"
#include "quantizer/ex_code.h"
#include "testing.h"
#include "thread_pool.h"

namespace {

struct Case {
  const char* name;
  size_t n, clusters;
  float scale;  // of the data; queries are of scale 1
  float epsilon;
};

}  // namespace

// Searches where a vector's error bound is zero: a vector equal to its
// centroid (one vector per cluster, or all vectors equal), epsilon 0, and
// data so much smaller than the query that the bound vanishes in float.
// Its lower bound then equals its estimate and its own upper bound; the
// re-rank dropped it (a strict <, and 3e - 2lo rounding below lo) and the
// search answered fewer than k results (ids -1) although k vectors existed.
TEST_CASE("a zero error bound still gives k results, the exact ones" * doctest::test_suite("ivf_index")) {
  rabitq::ThreadPool pool(2);
  const size_t dim = 16, k = 3;
  const Case cases[] = {
      {"one vector per cluster", 10, 10, 1.f, 1.9f},
      {"all vectors zero", 20, 2, 0.f, 1.9f},
      {"data at 1e-10, query at 1", 50, 1, 1e-10f, 1.9f},
      {"subnormal data", 50, 1, 1e-40f, 1.9f},
      {"epsilon 0", 50, 1, 1.f, 0.f},
  };
  for (const Case& c : cases) {
    std::vector<float> base(c.n * dim), query(dim);
    for (size_t i = 0; i < base.size(); ++i) base[i] = std::sin(static_cast<float>(i) * 7.1f) * c.scale;
    for (size_t i = 0; i < dim; ++i) query[i] = std::cos(static_cast<float>(i));
    std::vector<int32_t> want_ids(k);
    std::vector<float> want(k);
    rabitq::exact_knn(base.data(), c.n, query.data(), 1, dim, k, want_ids.data(), want.data(), pool, 0);
    for (unsigned bits : {1u, 4u}) {
      rabitq::BuildParams bp;
      bp.dim = dim;
      bp.num_clusters = c.clusters;
      bp.bits = bits;
      auto idx = rabitq::IvfRabitqIndex::build(base.data(), c.n, bp, pool);
      rabitq::SearchParams sp;
      sp.k = k;
      sp.nprobe = c.clusters;
      sp.epsilon = c.epsilon;
      std::vector<int64_t> ids(k);
      std::vector<float> dists(k);
      idx->search(query.data(), sp, ids.data(), dists.data(), nullptr);
      for (size_t j = 0; j < k; ++j) {
        INFO(std::string(c.name) << ", bits " << bits << ", slot " << j);
        CHECK(ids[j] != -1);
        // With epsilon 0 the estimates are trusted as they are: k results, not necessarily the exact ones.
        if (c.epsilon > 0.f) CHECK(dists[j] == doctest::Approx(want[j]).epsilon(1e-5));
      }
    }
  }
}

// A residual that overflowed float (a huge finite input, or a forged
// rotation) reached a float -> int32 cast of NaN / inf in the multi-bit
// encoder's scale search: undefined behaviour (UBSan aborts).
TEST_CASE("the multi-bit encoder takes a non-finite residual without undefined behaviour" *
          doctest::test_suite("ex_code")) {
  const float kInf = std::numeric_limits<float>::infinity(), kNan = std::numeric_limits<float>::quiet_NaN();
  for (rabitq::ExRescale mode : {rabitq::ExRescale::kExact, rabitq::ExRescale::kConstant, rabitq::ExRescale::kSearch}) {
    for (float bad : {kInf, -kInf, kNan, 3.4e38f}) {
      rabitq::ExEncoder enc(64, 4, mode);
      std::vector<float> o(64);
      for (size_t i = 0; i < o.size(); ++i) o[i] = std::sin(static_cast<float>(i));
      o[5] = bad;
      std::vector<uint8_t> ex(enc.code_bytes());
      rabitq::ExFactor f;
      enc.encode(o.data(), ex.data(), &f);  // must not trap; the code itself is garbage in, garbage out
    }
  }
}

// A forged dense rotation with one huge (finite) entry and valid checksums
// loaded, and add() then fed the encoder an overflowed residual (the case
// above). Refused at load now: the rows of a rotation have norm 1.
TEST_CASE("a dense rotation whose rows are not unit vectors is refused at load" * doctest::test_suite("persist")) {
  namespace fmt = rabitq::index_format;
  rabitq::ThreadPool pool(2);
  const size_t dim = 7, n = 20;
  std::vector<float> base(n * dim);
  for (size_t i = 0; i < base.size(); ++i) base[i] = std::cos(static_cast<float>(i) * 1.3f);
  rabitq::BuildParams bp;
  bp.dim = dim;
  bp.num_clusters = 2;
  bp.bits = 3;
  bp.rotation = rabitq::RotationKind::kDense;
  const std::vector<uint8_t> good = rabitq::IvfRabitqIndex::build(base.data(), n, bp, pool)->to_bytes();
  auto u32 = [](const std::vector<uint8_t>& b, size_t at) {
    uint32_t v;
    std::memcpy(&v, &b[at], 4);
    return v;
  };
  auto u64 = [](const std::vector<uint8_t>& b, size_t at) {
    uint64_t v;
    std::memcpy(&v, &b[at], 8);
    return v;
  };
  // The table (docs/FORMAT.md): entries of 32 bytes from byte 32.
  const uint32_t header_len = u32(good, 16), count = u32(good, 20);
  size_t entry = 0;
  for (uint32_t i = 0; i < count; ++i)
    if (u32(good, 32 + 32 * i) == fmt::kRotation) entry = 32 + 32 * i;
  REQUIRE(entry != 0);
  const uint64_t offset = u64(good, entry + 8), length = u64(good, entry + 16);
  for (float forged : {2.5e38f, 1.5f, 0.9f}) {
    std::vector<uint8_t> b = good;
    std::memcpy(&b[offset + 4 * 3], &forged, 4);  // row 0, column 3
    const uint32_t crc = rabitq::persist::crc32c(&b[offset], length);
    std::memcpy(&b[entry + 24], &crc, 4);
    const uint32_t hcrc = rabitq::persist::crc32c(b.data(), header_len - 4);
    std::memcpy(&b[header_len - 4], &hcrc, 4);
    INFO("entry " << forged);
    try {
      rabitq::IvfRabitqIndex::load(rabitq::persist::Blob::copy_of(b.data(), b.size()), "buffer", false);
      FAIL("loaded");
    } catch (const rabitq::Error& e) {
      CHECK(e.kind() == rabitq::ErrorKind::kFormat);
      CHECK(std::string(e.what()).find("rotation matrix row 0") != std::string::npos);
    }
  }
  // The unforged bytes load.
  CHECK(
      rabitq::IvfRabitqIndex::load(rabitq::persist::Blob::copy_of(good.data(), good.size()), "buffer", false)->size() ==
      n);
}
