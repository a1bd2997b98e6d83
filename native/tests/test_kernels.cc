// Every SIMD kernel table the CPU supports against the scalar reference, and
// the scalar reference against plain definitions.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "common.h"
#include "kernels/kernels.h"
#include "testing.h"

using rabitq::Kernels;
using rabitq::SimdLevel;
using rabitq_test::Rng;

namespace {

constexpr SimdLevel kAllLevels[] = {SimdLevel::kScalar, SimdLevel::kAvx2, SimdLevel::kAvx512, SimdLevel::kNeon};

// SIMD tables other than scalar that this CPU can run. On AArch64 also the
// base NEON table when dispatch upgraded some kernels (dotprod), so both
// versions of those kernels are tested.
std::vector<const Kernels*> simd_tables() {
  std::vector<const Kernels*> out;
  for (SimdLevel l : {SimdLevel::kAvx2, SimdLevel::kAvx512, SimdLevel::kNeon}) {
    if (const Kernels* k = rabitq::kernels_for(l)) out.push_back(k);
  }
  const Kernels* neon = rabitq::kernels_for(SimdLevel::kNeon);
  const Kernels* base = rabitq::neon_kernels();
  if (neon != nullptr && base != nullptr && (base->popcount_and != neon->popcount_and || base->ex_ip != neon->ex_ip))
    out.push_back(base);
  return out;
}

// Which levels this CPU should offer: scalar always; on x86-64 the ordered
// levels up to the detected one; on AArch64 NEON.
bool expect_available(SimdLevel l) {
  const SimdLevel d = rabitq::detected_level();
  if (l == SimdLevel::kScalar || l == d) return true;
  if (l == SimdLevel::kNeon || d == SimdLevel::kNeon) return false;
  return static_cast<int>(l) <= static_cast<int>(d);
}

// Every dimension 1..300 plus a few long ones.
std::vector<size_t> test_dims() {
  std::vector<size_t> d;
  for (size_t i = 1; i <= 300; ++i) d.push_back(i);
  for (size_t i : {383, 384, 511, 512, 513, 767, 960, 1000, 1023, 1024, 1025, 1536, 2047, 4096}) d.push_back(i);
  return d;
}

// Floats agree to 1e-5 relative; `scale` (the sum of |terms|) adds an
// absolute allowance for sums that cancel to nearly zero.
bool close(float got, float want, double scale) {
  const double diff = std::fabs(static_cast<double>(got) - static_cast<double>(want));
  return diff <= 1e-5 * std::fabs(static_cast<double>(want)) + 1e-6 * scale;
}

// A buffer whose data starts `offset` elements past a 64-byte boundary, so
// kernels see unaligned inputs.
template <typename T>
struct Buf {
  std::vector<T> storage;
  T* p;
  Buf(size_t n, size_t offset) : storage(n + offset + 64 / sizeof(T)) {
    uintptr_t base = reinterpret_cast<uintptr_t>(storage.data());
    uintptr_t aligned = (base + 63) & ~uintptr_t(63);
    p = reinterpret_cast<T*>(aligned) + offset;
  }
};

void fill(float* x, size_t n, Rng& rng, float lo = -1.f, float hi = 1.f) {
  for (size_t i = 0; i < n; ++i) x[i] = rng.uniform(lo, hi);
}

TEST_CASE("tables are complete and the levels are ordered" * doctest::test_suite("kernels")) {
  const Kernels& s = rabitq::scalar_kernels();
  CHECK(s.level == SimdLevel::kScalar);
  for (SimdLevel l : kAllLevels) {
    const Kernels* k = rabitq::kernels_for(l);
    if (expect_available(l)) {
      CHECK_MESSAGE((k != nullptr), rabitq::level_name(l));
    } else {
      CHECK_MESSAGE((k == nullptr), rabitq::level_name(l));
      CHECK_THROWS_AS(rabitq::set_active_level(l), rabitq::Error);
    }
    if (k == nullptr) continue;
    CHECK(k->level == l);
    CHECK(std::strcmp(k->name, rabitq::level_name(l)) == 0);
    CHECK((k->l2sq && k->dot && k->minmax && k->quantize && k->popcount_and && k->bitplane_ip && k->fastscan &&
           k->dot_tile16 && k->dot_tile16_f16 && k->estimate && k->fastscan_luts && k->ex_ip && k->scan_blocks &&
           k->indices_below && k->ex_query));
  }
#if defined(__aarch64__)
  CHECK(rabitq::detected_level() == SimdLevel::kNeon);
  CHECK((rabitq::neon_kernels() != nullptr));
#else
  CHECK((rabitq::neon_kernels() == nullptr));
  CHECK((rabitq::kernels_for(SimdLevel::kNeon) == nullptr));
#endif
  SimdLevel parsed;
  CHECK((rabitq::parse_level("avx2", &parsed) && parsed == SimdLevel::kAvx2));
  CHECK((rabitq::parse_level("avx512", &parsed) && parsed == SimdLevel::kAvx512));
  CHECK((rabitq::parse_level("scalar", &parsed) && parsed == SimdLevel::kScalar));
  CHECK((rabitq::parse_level("neon", &parsed) && parsed == SimdLevel::kNeon));
  CHECK(!rabitq::parse_level("NEON", &parsed));
  CHECK(!rabitq::parse_level("AVX2", &parsed));
  CHECK(!rabitq::parse_level("", &parsed));
  CHECK(!rabitq::parse_level("sse", &parsed));
}

// A SIMD table entry left pointing at the scalar reference would pass every
// equality test below while silently running scalar code.
TEST_CASE("no SIMD table falls back to a scalar kernel" * doctest::test_suite("kernels")) {
  const Kernels& s = rabitq::scalar_kernels();
  for (const Kernels* k : simd_tables()) {
    CHECK_MESSAGE((k->l2sq != s.l2sq), k->name);
    CHECK_MESSAGE((k->dot != s.dot), k->name);
    CHECK_MESSAGE((k->minmax != s.minmax), k->name);
    CHECK_MESSAGE((k->quantize != s.quantize), k->name);
    CHECK_MESSAGE((k->popcount_and != s.popcount_and), k->name);
    CHECK_MESSAGE((k->bitplane_ip != s.bitplane_ip), k->name);
    CHECK_MESSAGE((k->fastscan != s.fastscan), k->name);
    CHECK_MESSAGE((k->dot_tile16 != s.dot_tile16), k->name);
    CHECK_MESSAGE((k->dot_tile16_f16 != s.dot_tile16_f16), k->name);
    CHECK_MESSAGE((k->estimate != s.estimate), k->name);
    CHECK_MESSAGE((k->ex_ip != s.ex_ip), k->name);
    CHECK_MESSAGE((k->fastscan_luts != s.fastscan_luts), k->name);
    CHECK_MESSAGE((k->scan_blocks != s.scan_blocks), k->name);
    CHECK_MESSAGE((k->indices_below != s.indices_below), k->name);
    CHECK_MESSAGE((k->ex_query != s.ex_query), k->name);
  }
}

TEST_CASE("set_active_level switches between every supported level" * doctest::test_suite("kernels")) {
  const SimdLevel before = rabitq::active_level();
  for (SimdLevel l : kAllLevels) {
    if (rabitq::kernels_for(l) == nullptr) continue;
    rabitq::set_active_level(l);
    CHECK(rabitq::active_level() == l);
    CHECK(&rabitq::active_kernels() == rabitq::kernels_for(l));
  }
  rabitq::set_active_level(before);
}

TEST_CASE("scalar l2sq/dot/minmax match their definitions" * doctest::test_suite("kernels")) {
  Rng rng(11);
  const Kernels& s = rabitq::scalar_kernels();
  for (size_t d : test_dims()) {
    std::vector<float> a(d), b(d);
    fill(a.data(), d, rng);
    fill(b.data(), d, rng);
    double l2 = 0, ip = 0, absip = 0;
    float lo = a[0], hi = a[0];
    for (size_t i = 0; i < d; ++i) {
      double t = double(a[i]) - double(b[i]);
      l2 += t * t;
      ip += double(a[i]) * double(b[i]);
      absip += std::fabs(double(a[i]) * double(b[i]));
      lo = std::min(lo, a[i]);
      hi = std::max(hi, a[i]);
    }
    CHECK_MESSAGE(close(s.l2sq(a.data(), b.data(), d), float(l2), l2), "d=" << d);
    CHECK_MESSAGE(close(s.dot(a.data(), b.data(), d), float(ip), absip), "d=" << d);
    float l, h;
    s.minmax(a.data(), d, &l, &h);
    CHECK_MESSAGE((l == lo && h == hi), "d=" << d);
  }
}

TEST_CASE("l2sq and dot equal scalar at every level" * doctest::test_suite("kernels")) {
  const Kernels& s = rabitq::scalar_kernels();
  for (const Kernels* k : simd_tables()) {
    Rng rng(1000 + static_cast<int>(k->level));
    for (size_t d : test_dims()) {
      const size_t oa = d % 4, ob = (d / 4) % 4;
      Buf<float> a(d, oa), b(d, ob);
      // Mostly unit-scale data, sometimes large magnitudes with an offset.
      const float scale = (d % 5 == 0) ? 1000.f : 1.f;
      fill(a.p, d, rng, -scale, scale);
      fill(b.p, d, rng, -scale, scale);
      if (d % 7 == 0)
        for (size_t i = 0; i < d; ++i) b.p[i] = a.p[i] + rng.uniform(-1e-3f, 1e-3f) * scale;
      double l2scale = 0, ipscale = 0;
      for (size_t i = 0; i < d; ++i) {
        double t = double(a.p[i]) - double(b.p[i]);
        l2scale += t * t;
        ipscale += std::fabs(double(a.p[i]) * double(b.p[i]));
      }
      const float l2s = s.l2sq(a.p, b.p, d), l2k = k->l2sq(a.p, b.p, d);
      CHECK_MESSAGE(close(l2k, l2s, l2scale), k->name << " l2sq d=" << d << " got " << l2k << " want " << l2s);
      const float ips = s.dot(a.p, b.p, d), ipk = k->dot(a.p, b.p, d);
      CHECK_MESSAGE(close(ipk, ips, ipscale), k->name << " dot d=" << d << " got " << ipk << " want " << ips);
      CHECK_MESSAGE(k->l2sq(a.p, a.p, d) == 0.f, k->name << " d=" << d);
    }
  }
}

TEST_CASE("minmax equals scalar at every level" * doctest::test_suite("kernels")) {
  const Kernels& s = rabitq::scalar_kernels();
  for (const Kernels* k : simd_tables()) {
    Rng rng(2000 + static_cast<int>(k->level));
    for (size_t d : test_dims()) {
      Buf<float> x(d, d % 3 + 1);
      fill(x.p, d, rng, -50.f, 50.f);
      // Put the extremes in the tail, the head, or anywhere.
      const size_t where = d % 3 == 0 ? d - 1 : d % 3 == 1 ? 0 : rng.below(d);
      x.p[where] = 1000.f;
      x.p[rng.below(d)] = -1000.f;
      float sl, sh, kl, kh;
      s.minmax(x.p, d, &sl, &sh);
      k->minmax(x.p, d, &kl, &kh);
      CHECK_MESSAGE((sl == kl && sh == kh),
                    k->name << " d=" << d << " scalar " << sl << "," << sh << " simd " << kl << "," << kh);
    }
    // All equal and all negative.
    std::vector<float> c(37, -3.f);
    float l, h;
    k->minmax(c.data(), c.size(), &l, &h);
    CHECK((l == -3.f && h == -3.f));
  }
}

TEST_CASE("quantize equals scalar for B = 1..8, including clamping" * doctest::test_suite("kernels")) {
  const Kernels& s = rabitq::scalar_kernels();
  for (const Kernels* k : simd_tables()) {
    Rng rng(3000 + static_cast<int>(k->level));
    for (size_t d : test_dims()) {
      Buf<float> x(d, d % 4), off(d, (d + 1) % 4);
      fill(x.p, d, rng, -2.f, 3.f);
      for (size_t i = 0; i < d; ++i) off.p[i] = static_cast<float>(rng.uniform()) * 0.99999f;
      float lo, hi;
      s.minmax(x.p, d, &lo, &hi);
      const float range = hi > lo ? hi - lo : 1.f;
      for (uint32_t bits = 1; bits <= 8; ++bits) {
        const uint32_t maxval = (1u << bits) - 1;
        // 0: in range ((x-lo)*inv <= maxval), 1: overflowing (clamps at
        // maxval), 2: lo above the minimum (clamps at 0).
        for (int variant = 0; variant < 3; ++variant) {
          float qlo = lo, inv = static_cast<float>(maxval) / range * 0.9999f;
          if (variant == 1) inv *= 1.7f;
          if (variant == 2) qlo = lo + 0.4f * range;
          std::vector<uint8_t> os(d + 64, 0xAB), ok(d + 64, 0xAB);
          const uint32_t ss = s.quantize(x.p, d, qlo, inv, off.p, maxval, os.data());
          const uint32_t sk = k->quantize(x.p, d, qlo, inv, off.p, maxval, ok.data());
          CHECK_MESSAGE(ss == sk, k->name << " d=" << d << " B=" << bits << " variant " << variant << " sum " << sk
                                          << " want " << ss);
          CHECK_MESSAGE(os == ok, k->name << " d=" << d << " B=" << bits << " variant " << variant);
          uint64_t sum = 0;
          bool in_range = true;
          for (size_t i = 0; i < d; ++i) {
            sum += ok[i];
            in_range = in_range && ok[i] <= maxval;
          }
          CHECK_MESSAGE((in_range && sum == sk), k->name << " d=" << d);
          bool guard = true;
          for (size_t i = d; i < d + 64; ++i) guard = guard && ok[i] == 0xAB;
          CHECK_MESSAGE(guard, k->name << " wrote past the end at d=" << d);
        }
      }
    }
  }
}

TEST_CASE("scalar quantize matches its definition" * doctest::test_suite("kernels")) {
  Rng rng(3500);
  const size_t d = 200;
  std::vector<float> x(d), off(d);
  fill(x.data(), d, rng);
  for (auto& o : off) o = static_cast<float>(rng.uniform());
  std::vector<uint8_t> out(d);
  const uint32_t sum =
      rabitq::scalar_kernels().quantize(x.data(), d, -1.f, 7.f / 2.f * 0.999f, off.data(), 7, out.data());
  uint32_t want_sum = 0;
  for (size_t i = 0; i < d; ++i) {
    float v = (x[i] + 1.f) * (7.f / 2.f * 0.999f);
    v += off[i];
    uint32_t q = static_cast<uint32_t>(std::floor(std::max(v, 0.f)));
    q = std::min(q, 7u);
    CHECK_MESSAGE(out[i] == q, "i=" << i);
    want_sum += q;
  }
  CHECK(sum == want_sum);
}

uint64_t naive_popcount_and(const uint64_t* a, const uint64_t* b, size_t words) {
  uint64_t s = 0;
  for (size_t w = 0; w < words; ++w)
    for (int bit = 0; bit < 64; ++bit) s += ((a[w] & b[w]) >> bit) & 1u;
  return s;
}

TEST_CASE("popcount_and equals scalar and the definition" * doctest::test_suite("kernels")) {
  const Kernels& s = rabitq::scalar_kernels();
  Rng rng(4000);
  for (size_t words : test_dims()) {
    Buf<uint64_t> a(words, words % 3), b(words, (words + 1) % 3);
    for (size_t i = 0; i < words; ++i) {
      a.p[i] = rng.next();
      b.p[i] = rng.next();
    }
    if (words % 11 == 0)
      for (size_t i = 0; i < words; ++i) a.p[i] = b.p[i] = ~uint64_t(0);
    const uint64_t want = s.popcount_and(a.p, b.p, words);
    if (words <= 300) CHECK_MESSAGE(want == naive_popcount_and(a.p, b.p, words), "words=" << words);
    for (const Kernels* k : simd_tables())
      CHECK_MESSAGE(k->popcount_and(a.p, b.p, words) == want, k->name << " words=" << words);
  }
}

TEST_CASE("bitplane_ip equals scalar and the B-bit inner product" * doctest::test_suite("kernels")) {
  const Kernels& s = rabitq::scalar_kernels();
  Rng rng(5000);
  for (size_t words : test_dims()) {
    if (words > 300 && words != 1024 && words != 4096) continue;
    for (size_t bits = 1; bits <= 10; ++bits) {
      Buf<uint64_t> planes(bits * words, bits % 3), code(words, words % 3);
      for (size_t i = 0; i < bits * words; ++i) planes.p[i] = rng.next();
      for (size_t i = 0; i < words; ++i) code.p[i] = rng.next();
      const uint64_t want = s.bitplane_ip(planes.p, bits, code.p, words);
      if (words <= 40) {
        // Rebuild each coordinate's B-bit value and sum where the code bit is set.
        uint64_t ref = 0;
        for (size_t j = 0; j < words * 64; ++j) {
          if (!((code.p[j / 64] >> (j % 64)) & 1u)) continue;
          uint64_t v = 0;
          for (size_t b = 0; b < bits; ++b) v |= ((planes.p[b * words + j / 64] >> (j % 64)) & 1u) << b;
          ref += v;
        }
        CHECK_MESSAGE(want == ref, "words=" << words << " bits=" << bits);
      }
      for (const Kernels* k : simd_tables())
        CHECK_MESSAGE(k->bitplane_ip(planes.p, bits, code.p, words) == want,
                      k->name << " words=" << words << " bits=" << bits);
    }
  }
}

void naive_fastscan(const uint8_t* codes, const uint8_t* luts, size_t npairs, uint16_t* out) {
  for (size_t j = 0; j < 32; ++j) {
    uint32_t sum = 0;
    for (size_t sub = 0; sub < 2 * npairs; ++sub) {
      const size_t p = sub / 2;
      const uint8_t byte = codes[p * 32 + j];
      const uint8_t nib = sub % 2 == 0 ? (byte & 15) : (byte >> 4);
      sum += luts[p * 32 + (sub % 2) * 16 + nib];
    }
    out[j] = static_cast<uint16_t>(sum);
  }
}

TEST_CASE("fastscan_luts equals scalar and a plain loop" * doctest::test_suite("kernels")) {
  const Kernels& s = rabitq::scalar_kernels();
  Rng rng(6100);
  for (size_t npairs = 1; npairs <= 130; ++npairs) {
    for (int pattern = 0; pattern < 2; ++pattern) {
      Buf<uint8_t> qu(npairs * 8, npairs % 3);
      for (size_t i = 0; i < npairs * 8; ++i) qu.p[i] = pattern == 0 ? static_cast<uint8_t>(rng.below(16)) : 15;
      std::vector<uint8_t> naive(npairs * 32), want(npairs * 32), got(npairs * 32 + 16);
      for (size_t m = 0; m < 2 * npairs; ++m)
        for (unsigned v = 0; v < 16; ++v) {
          unsigned sum = 0;
          for (unsigned b = 0; b < 4; ++b)
            if (v & (1u << b)) sum += qu.p[4 * m + b];
          naive[(m / 2) * 32 + (m % 2) * 16 + v] = static_cast<uint8_t>(sum);
        }
      s.fastscan_luts(qu.p, npairs, want.data());
      CHECK_MESSAGE(want == naive, "scalar npairs=" << npairs);
      for (const Kernels* k : simd_tables()) {
        std::fill(got.begin(), got.end(), uint8_t(0xAB));
        k->fastscan_luts(qu.p, npairs, got.data());
        CHECK_MESSAGE(std::memcmp(want.data(), got.data(), want.size()) == 0, k->name << " npairs=" << npairs);
        bool guard = true;
        for (size_t i = npairs * 32; i < got.size(); ++i) guard = guard && got[i] == 0xAB;
        CHECK_MESSAGE(guard, k->name << " wrote past the LUTs, npairs=" << npairs);
      }
    }
  }
}

TEST_CASE("fastscan equals scalar and a plain loop" * doctest::test_suite("kernels")) {
  const Kernels& s = rabitq::scalar_kernels();
  Rng rng(6000);
  std::vector<size_t> pairs;
  for (size_t p = 1; p <= 130; ++p) pairs.push_back(p);
  for (size_t p : {192, 200, 258}) pairs.push_back(p);
  for (size_t npairs : pairs) {
    for (int pattern = 0; pattern < 3; ++pattern) {
      Buf<uint8_t> codes(npairs * 32, npairs % 5), luts(npairs * 32, (npairs + 2) % 5);
      for (size_t i = 0; i < npairs * 32; ++i) {
        codes.p[i] = static_cast<uint8_t>(rng.next());
        // pattern 0: any entry <= 127; 1: all at the 127 maximum; 2: small.
        luts.p[i] = pattern == 0   ? static_cast<uint8_t>(rng.below(128))
                    : pattern == 1 ? 127
                                   : static_cast<uint8_t>(rng.below(4));
      }
      uint16_t want[32], got[32 + 8], naive[32];
      s.fastscan(codes.p, luts.p, npairs, want);
      naive_fastscan(codes.p, luts.p, npairs, naive);
      CHECK_MESSAGE(std::memcmp(want, naive, sizeof want) == 0, "scalar npairs=" << npairs);
      for (const Kernels* k : simd_tables()) {
        std::fill(got, got + 40, uint16_t(0xBEEF));
        k->fastscan(codes.p, luts.p, npairs, got);
        CHECK_MESSAGE(std::memcmp(want, got, sizeof want) == 0,
                      k->name << " npairs=" << npairs << " pattern " << pattern);
        bool guard = true;
        for (int i = 32; i < 40; ++i) guard = guard && got[i] == 0xBEEF;
        CHECK_MESSAGE(guard, k->name << " wrote past out[31]");
      }
    }
  }
}

// scan_blocks is fastscan then estimate block by block, fused: the same
// sums, estimates, bounds and masks as the scalar kernels called one block
// at a time, bit for bit, at every level (thresholds that split the blocks,
// NaN factors, and each block's own factors and codes).
TEST_CASE("scan_blocks equals scalar fastscan + estimate per block" * doctest::test_suite("kernels")) {
  const Kernels& s = rabitq::scalar_kernels();
  Rng rng(6100);
  std::vector<const Kernels*> tables = simd_tables();
  tables.push_back(&s);
  for (size_t npairs : {1, 2, 3, 8, 16, 17, 120}) {
    for (size_t nblocks : {1, 2, 7}) {
      Buf<uint8_t> codes(npairs * 32 * nblocks, 1), luts(npairs * 32, 2);
      for (size_t i = 0; i < npairs * 32 * nblocks; ++i) codes.p[i] = static_cast<uint8_t>(rng.next());
      for (size_t i = 0; i < npairs * 32; ++i) luts.p[i] = static_cast<uint8_t>(rng.below(16));
      std::vector<float> factors(nblocks * 32 * 4);
      for (size_t i = 0; i < factors.size(); ++i) factors[i] = static_cast<float>(rng.uniform() * 4.0 - 1.0);
      factors[5 * 4 + 1] = std::nanf("");  // a NaN estimate: never in a mask
      const rabitq::EstimateParams ep{1.5f, -0.25f, 0.125f, 3.f, 0.3f, 0.01f};
      // The median lower bound of the scalar pass: about half of each mask set.
      std::vector<float> want_est(nblocks * 32), want_lower(nblocks * 32);
      std::vector<uint32_t> want_mask(nblocks);
      for (float threshold : {std::numeric_limits<float>::infinity(), 0.f}) {
        for (size_t b = 0; b < nblocks; ++b) {
          uint16_t ip[32];
          s.fastscan(codes.p + b * npairs * 32, luts.p, npairs, ip);
          want_mask[b] = s.estimate(factors.data() + b * 128, ip, 32, ep, threshold, want_est.data() + b * 32,
                                    want_lower.data() + b * 32);
        }
        if (threshold == 0.f) {
          std::vector<float> sorted = want_lower;
          std::sort(sorted.begin(), sorted.end(), [](float a, float b) { return a < b || (a == a && b != b); });
          threshold = sorted[sorted.size() / 2];
          for (size_t b = 0; b < nblocks; ++b) {
            uint16_t ip[32];
            s.fastscan(codes.p + b * npairs * 32, luts.p, npairs, ip);
            want_mask[b] = s.estimate(factors.data() + b * 128, ip, 32, ep, threshold, want_est.data() + b * 32,
                                      want_lower.data() + b * 32);
          }
        }
        for (const Kernels* k : tables) {
          std::vector<float> est(nblocks * 32 + 1, -7.f), lower(nblocks * 32 + 1, -7.f);
          std::vector<uint32_t> mask(nblocks + 1, 0xdeadbeefu);
          k->scan_blocks(codes.p, luts.p, npairs, factors.data(), nblocks, ep, threshold, est.data(), lower.data(),
                         mask.data());
          const std::string what = std::string(k->name) + " npairs=" + std::to_string(npairs) +
                                   " nblocks=" + std::to_string(nblocks) + " threshold=" + std::to_string(threshold);
          CHECK_MESSAGE(std::memcmp(est.data(), want_est.data(), want_est.size() * 4) == 0, what);
          CHECK_MESSAGE(std::memcmp(lower.data(), want_lower.data(), want_lower.size() * 4) == 0, what);
          CHECK_MESSAGE(std::memcmp(mask.data(), want_mask.data(), want_mask.size() * 4) == 0, what);
          CHECK_MESSAGE((est.back() == -7.f && lower.back() == -7.f && mask.back() == 0xdeadbeefu),
                        what << ": wrote past the last block");
        }
        if (!std::isinf(threshold)) {
          bool split = false;
          for (uint32_t m : want_mask) split = split || (m != 0 && m != ~0u);
          CHECK_MESSAGE(split, "the threshold should split some block");
        }
      }
    }
  }
}

// indices_below: exactly the positions a plain loop keeps, ascending, at
// every length (tails of every size), with NaN, infinities, ties with the
// threshold, and nothing written past n + 16.
TEST_CASE("indices_below equals a plain loop at every level" * doctest::test_suite("kernels")) {
  Rng rng(6200);
  std::vector<const Kernels*> tables = simd_tables();
  tables.push_back(&rabitq::scalar_kernels());
  for (size_t n : {0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 100, 1265, 4096}) {
    std::vector<float> x(n);
    for (size_t i = 0; i < n; ++i) x[i] = static_cast<float>(rng.below(1000));
    if (n > 3) {
      x[1] = std::nanf("");
      x[2] = std::numeric_limits<float>::infinity();
      x[3] = -std::numeric_limits<float>::infinity();
    }
    for (float t : {-1.f, 30.f, 500.f, 999.f, std::numeric_limits<float>::infinity()}) {
      std::vector<uint32_t> want;
      for (size_t i = 0; i < n; ++i)
        if (x[i] <= t) want.push_back(static_cast<uint32_t>(i));
      for (const Kernels* k : tables) {
        std::vector<uint32_t> got(n + 16 + 4, 0xdeadbeefu);
        const size_t c = k->indices_below(x.data(), n, t, got.data());
        const std::string what = std::string(k->name) + " n=" + std::to_string(n) + " t=" + std::to_string(t);
        REQUIRE_MESSAGE(c == want.size(), what);
        CHECK_MESSAGE(std::equal(want.begin(), want.end(), got.begin()), what);
        bool guard = true;
        for (size_t i = n + 16; i < got.size(); ++i) guard = guard && got[i] == 0xdeadbeefu;
        CHECK_MESSAGE(guard, what << ": wrote past n + 16");
      }
    }
  }
}

// ex_query: every level gives the scalar level's bits (codes, sum, max,
// the double norm), and the codes are lround(x * 127 / max) of a plain
// double computation, ties at .5 away from zero, with a zero residual all 0.
TEST_CASE("ex_query equals scalar and a plain lround at every level" * doctest::test_suite("kernels")) {
  const Kernels& s = rabitq::scalar_kernels();
  Rng rng(6300);
  for (size_t pd : {64, 128, 192, 960, 1024}) {
    for (int pattern = 0; pattern < 4; ++pattern) {
      std::vector<float> x(pd);
      for (size_t i = 0; i < pd; ++i) {
        // 0: random; 1: exact halves of the step (127 / max = 1, ties); 2: zero; 3: one spike
        x[i] = pattern == 0   ? rng.uniform(-3.f, 3.f)
               : pattern == 1 ? static_cast<float>(static_cast<int>(rng.below(255)) - 127) * 0.5f
               : pattern == 2 ? 0.f
                              : (i == pd / 3 ? -1000.f : rng.uniform(-1.f, 1.f));
      }
      if (pattern == 1) x[5] = 127.f;  // max |x| = 127: x * 127 / max = x, halves stay halves
      std::vector<int8_t> want(pd);
      float want_max;
      double want_n2;
      const int32_t want_sum = s.ex_query(x.data(), pd, want.data(), &want_max, &want_n2);
      float mx = 0;
      for (float v : x) mx = std::max(mx, std::fabs(v));
      CHECK(want_max == mx);
      int32_t sum = 0;
      bool codes = true;
      for (size_t i = 0; i < pd; ++i) {
        const long r = mx > 0 ? std::lround(static_cast<double>(x[i] * (127.f / mx))) : 0;
        codes = codes && want[i] == static_cast<int8_t>(std::max(-127L, std::min(127L, r)));
        sum += want[i];
      }
      CHECK_MESSAGE(codes, "pd=" << pd << " pattern " << pattern);
      CHECK(sum == want_sum);
      for (const Kernels* k : simd_tables()) {
        std::vector<int8_t> got(pd + 8, 0x55);
        float got_max;
        double got_n2;
        const int32_t got_sum = k->ex_query(x.data(), pd, got.data(), &got_max, &got_n2);
        const std::string what =
            std::string(k->name) + " pd=" + std::to_string(pd) + " pattern " + std::to_string(pattern);
        CHECK_MESSAGE(std::memcmp(got.data(), want.data(), pd) == 0, what);
        CHECK_MESSAGE(got_sum == want_sum, what);
        CHECK_MESSAGE(std::memcmp(&got_max, &want_max, sizeof got_max) == 0, what);
        CHECK_MESSAGE(std::memcmp(&got_n2, &want_n2, sizeof got_n2) == 0, what);
        CHECK_MESSAGE(got[pd] == 0x55, what << ": wrote past padded_dim");
      }
    }
  }
}

TEST_CASE("dot_tile16 equals scalar and per-column dots" * doctest::test_suite("kernels")) {
  const Kernels& s = rabitq::scalar_kernels();
  Rng rng(7000);
  std::vector<size_t> dims;
  for (size_t d = 1; d <= 70; ++d) dims.push_back(d);
  for (size_t d : {96, 127, 128, 129, 300, 960, 1024, 4096}) dims.push_back(d);
  for (size_t dim : dims) {
    for (size_t np : {1, 2, 3, 4, 5, 7, 8, 9, 12, 16, 17}) {
      if (dim >= 960 && np > 9) continue;
      Buf<float> xs(np * dim, dim % 4), ct(dim * 16, (dim + 1) % 4);
      fill(xs.p, np * dim, rng);
      fill(ct.p, dim * 16, rng);
      std::vector<float> want(np * 16);
      s.dot_tile16(xs.p, np, dim, ct.p, want.data());
      // Each SIMD table's output, with 16 guard values past the end.
      const auto tables = simd_tables();
      std::vector<std::vector<float>> got(tables.size(), std::vector<float>(np * 16 + 16, 12345.f));
      for (size_t t = 0; t < tables.size(); ++t) tables[t]->dot_tile16(xs.p, np, dim, ct.p, got[t].data());
      for (size_t p = 0; p < np; ++p) {
        for (size_t j = 0; j < 16; ++j) {
          double ref = 0, scale = 0;
          for (size_t t = 0; t < dim; ++t) {
            ref += double(xs.p[p * dim + t]) * double(ct.p[t * 16 + j]);
            scale += std::fabs(double(xs.p[p * dim + t]) * double(ct.p[t * 16 + j]));
          }
          CHECK_MESSAGE(close(want[p * 16 + j], float(ref), scale), "scalar dim=" << dim << " np=" << np);
          for (size_t t = 0; t < tables.size(); ++t)
            CHECK_MESSAGE(close(got[t][p * 16 + j], want[p * 16 + j], scale),
                          tables[t]->name << " dim=" << dim << " np=" << np << " p=" << p << " j=" << j);
        }
      }
      for (size_t t = 0; t < tables.size(); ++t) {
        bool guard = true;
        for (size_t i = np * 16; i < got[t].size(); ++i) guard = guard && got[t][i] == 12345.f;
        CHECK_MESSAGE(guard, tables[t]->name << " wrote past the output at np=" << np);
      }
    }
  }
}

TEST_CASE("half floats: every binary16 value round-trips through float" * doctest::test_suite("kernels")) {
  size_t bad = 0;
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = rabitq::half_to_float(static_cast<uint16_t>(h));
    const bool is_nan = ((h >> 10) & 31u) == 31u && (h & 0x3ffu) != 0;
    if (is_nan) {
      if (!std::isnan(f) || !std::isnan(rabitq::half_to_float(rabitq::float_to_half(f)))) ++bad;
    } else if (rabitq::float_to_half(f) != h) {
      ++bad;
    }
  }
  CHECK_MESSAGE(bad == 0, bad << " halves do not round-trip");
  CHECK(rabitq::half_to_float(0x3c00) == 1.f);
  CHECK(rabitq::half_to_float(0xc000) == -2.f);
  CHECK(rabitq::half_to_float(0x7bff) == 65504.f);
  CHECK(rabitq::half_to_float(0x0001) == std::ldexp(1.f, -24));
}

TEST_CASE("float_to_half picks the nearest half, ties to even" * doctest::test_suite("kernels")) {
  Rng rng(8500);
  size_t bad = 0;
  for (int i = 0; i < 200000; ++i) {
    // Exponents from deep subnormal to overflow.
    const float f = static_cast<float>((rng.uniform() * 2 - 1) * std::ldexp(1.0, static_cast<int>(rng.below(48)) - 30));
    const uint16_t h = rabitq::float_to_half(f);
    const double got = rabitq::half_to_float(h);
    if (std::fabs(f) >= 65520.f) {
      if (!std::isinf(got)) ++bad;
      continue;
    }
    const double err = std::fabs(got - f);
    // Neighbours in magnitude (same sign).
    const uint16_t mag = h & 0x7fffu, sign = h & 0x8000u;
    const double up = rabitq::half_to_float(static_cast<uint16_t>(sign | (mag + 1)));
    const double down = mag > 0 ? rabitq::half_to_float(static_cast<uint16_t>(sign | (mag - 1))) : got;
    const double eu = std::fabs(up - f), ed = std::fabs(down - f);
    if (err > eu || err > ed) ++bad;
    if ((err == eu && mag != 0x7bff && (h & 1u)) || (err == ed && mag > 0 && (h & 1u) && ed != 0)) ++bad;
  }
  CHECK_MESSAGE(bad == 0, bad << " conversions are not nearest-even");
}

TEST_CASE("dot_tile16_f16 equals scalar and the decoded dot products" * doctest::test_suite("kernels")) {
  const Kernels& s = rabitq::scalar_kernels();
  Rng rng(8700);
  std::vector<size_t> dims;
  for (size_t d = 1; d <= 40; ++d) dims.push_back(d);
  for (size_t d : {64, 96, 127, 128, 129, 300, 960, 1024}) dims.push_back(d);
  const auto tables = simd_tables();
  for (size_t dim : dims) {
    for (size_t np : {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 16}) {
      Buf<float> xs(np * dim, dim % 4);
      fill(xs.p, np * dim, rng);
      Buf<uint16_t> ct(dim * 16, (dim + 1) % 4);
      for (size_t i = 0; i < dim * 16; ++i) ct.p[i] = rabitq::float_to_half(rng.uniform(-2.f, 2.f));
      std::vector<float> want(np * 16);
      s.dot_tile16_f16(xs.p, np, dim, ct.p, want.data());
      std::vector<std::vector<float>> got(tables.size(), std::vector<float>(np * 16 + 16, 12345.f));
      for (size_t t = 0; t < tables.size(); ++t) tables[t]->dot_tile16_f16(xs.p, np, dim, ct.p, got[t].data());
      for (size_t p = 0; p < np; ++p) {
        for (size_t j = 0; j < 16; ++j) {
          double ref = 0, scale = 0;
          for (size_t t = 0; t < dim; ++t) {
            const double c = rabitq::half_to_float(ct.p[t * 16 + j]);
            ref += double(xs.p[p * dim + t]) * c;
            scale += std::fabs(double(xs.p[p * dim + t]) * c);
          }
          CHECK_MESSAGE(close(want[p * 16 + j], float(ref), scale), "scalar dim=" << dim << " np=" << np);
          for (size_t t = 0; t < tables.size(); ++t)
            CHECK_MESSAGE(close(got[t][p * 16 + j], want[p * 16 + j], scale),
                          tables[t]->name << " f16 dim=" << dim << " np=" << np << " p=" << p << " j=" << j);
        }
      }
      for (size_t t = 0; t < tables.size(); ++t) {
        bool guard = true;
        for (size_t i = np * 16; i < got[t].size(); ++i) guard = guard && got[t][i] == 12345.f;
        CHECK_MESSAGE(guard, tables[t]->name << " f16 wrote past the output at np=" << np);
        // Each point alone gives the same bits as in the block.
        for (size_t p = 0; p < np; ++p) {
          float one[16];
          tables[t]->dot_tile16_f16(xs.p + p * dim, 1, dim, ct.p, one);
          CHECK_MESSAGE(std::memcmp(one, got[t].data() + p * 16, sizeof one) == 0,
                        tables[t]->name << " f16 point " << p << " of " << np << " differs alone, dim=" << dim);
        }
      }
    }
  }
}

// Exact-size heap buffers so that, under RABITQ_SANITIZE=ON, AddressSanitizer
// reports any read or write past an input or output (the other cases pad
// their buffers to test alignment).
TEST_CASE("no kernel touches memory past its exact-size buffers" * doctest::test_suite("kernels")) {
  Rng rng(8000);
  std::vector<const Kernels*> all{&rabitq::scalar_kernels()};
  for (const Kernels* k : simd_tables()) all.push_back(k);
  std::vector<size_t> dims;
  for (size_t d = 1; d <= 70; ++d) dims.push_back(d);
  for (size_t d : {127, 129, 255, 257, 1023}) dims.push_back(d);
  for (const Kernels* k : all) {
    for (size_t d : dims) {
      std::vector<float> a(d), b(d), off(d, 0.5f);
      fill(a.data(), d, rng);
      fill(b.data(), d, rng);
      std::vector<uint8_t> q(d);
      volatile float sink = k->l2sq(a.data(), b.data(), d) + k->dot(a.data(), b.data(), d);
      float lo, hi;
      k->minmax(a.data(), d, &lo, &hi);
      k->quantize(a.data(), d, lo, 15.f / (hi - lo + 1e-3f), off.data(), 15, q.data());
      std::vector<uint64_t> w1(d), w2(d), planes(4 * d);
      for (auto& w : w1) w = rng.next();
      for (auto& w : w2) w = rng.next();
      for (auto& w : planes) w = rng.next();
      volatile uint64_t isink = k->popcount_and(w1.data(), w2.data(), d);
      isink = isink + k->bitplane_ip(planes.data(), 4, w1.data(), d);
      std::vector<uint8_t> codes(d * 32), luts(d * 32, 3);
      std::vector<uint16_t> out(32);
      k->fastscan(codes.data(), luts.data(), d, out.data());
      k->fastscan_luts(q.data() + d - d / 8 * 8, d / 8, luts.data() + d * 32 - d / 8 * 32);
      if (d % 64 == 0 || d == 1) {
        // ex_ip over padded_dim 64 * d (d = 1 and 64), each ex_bits: q, sign and
        // the code end exactly at their buffers' ends.
        const size_t pd = d == 1 ? 64 : 64 * d;
        std::vector<int8_t> qq(pd, -127);
        std::vector<uint8_t> sign(pd / 8, 0x5a);
        for (unsigned eb = 1; eb <= 8; ++eb) {
          std::vector<uint8_t> ex(pd * eb / 8, 0xc3);
          isink = isink + static_cast<uint64_t>(k->ex_ip(qq.data(), sign.data(), ex.data(), pd, eb));
        }
      }
      for (size_t np : {1, 4, 5, 8, 9}) {
        std::vector<float> xs(np * d, 0.25f), ct(d * 16, 0.5f), o(np * 16);
        k->dot_tile16(xs.data(), np, d, ct.data(), o.data());
        std::vector<uint16_t> ch(d * 16, 0x3c00);
        k->dot_tile16_f16(xs.data(), np, d, ch.data(), o.data());
      }
      (void)sink;
      (void)isink;
    }
  }
  CHECK(true);
}

// Run by ctest with RABITQ_SIMD set (see CMakeLists.txt): the level chosen
// at first use follows the variable, and a bad value is a clear error.
TEST_CASE("RABITQ_SIMD selects the initial level" * doctest::test_suite("simd_env")) {
  const char* env = std::getenv("RABITQ_SIMD");
  if (env == nullptr || *env == '\0') {
    CHECK(rabitq::active_level() == rabitq::detected_level());
    return;
  }
  SimdLevel wanted;
  if (!rabitq::parse_level(env, &wanted) || rabitq::kernels_for(wanted) == nullptr) {
    bool threw = false;
    try {
      rabitq::active_kernels();
    } catch (const rabitq::Error& e) {
      threw = e.kind() == rabitq::ErrorKind::kRange && std::string(e.what()).find(env) != std::string::npos;
    }
    CHECK_MESSAGE(threw, "RABITQ_SIMD=" << env << " should throw a RangeError naming the value");
  } else {
    CHECK(rabitq::active_level() == wanted);
  }
}

}  // namespace
