// Multi-bit RaBitQ: the ex_ip kernels at every level against the scalar
// reference and a plain definition, the packed layout, the encoder, and the
// estimator's bias, error and bound coverage on SIFT residuals and on a
// 960-d synthetic set.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "common.h"
#include "kernels/ex_layout.h"
#include "kernels/kernels.h"
#include "quantizer/ex_code.h"
#include "rotation.h"
#include "testing.h"

using rabitq::ExEncoder;
using rabitq::ExFactor;
using rabitq::ExIpFn;
using rabitq::ExQuery;
using rabitq::ExRescale;
using rabitq_test::Rng;

namespace {

struct Variant {
  const char* name;
  ExIpFn fn;
};

std::vector<Variant> ex_variants() {
  const char* names[8];
  ExIpFn fns[8];
  const size_t n = std::min<size_t>(8, rabitq::ex_ip_variants(names, fns, 8));
  std::vector<Variant> out;
  for (size_t i = 0; i < n; ++i) out.push_back({names[i], fns[i]});
  return out;
}

// sum q_i ((sign_i << eb) + ex_i) from unpacked values.
int64_t plain_ex_ip(const std::vector<int8_t>& q, const std::vector<unsigned>& s, const std::vector<unsigned>& e,
                    unsigned eb) {
  int64_t r = 0;
  for (size_t i = 0; i < q.size(); ++i) r += int64_t(q[i]) * int64_t((s[i] << eb) + e[i]);
  return r;
}

// Packs unpacked sign bits and ex values (buffers start `offset` bytes past
// a 64-byte boundary).
struct Packed {
  std::vector<uint8_t> sign_store, ex_store, q_store;
  uint8_t *sign, *ex;
  int8_t* q;
  Packed(const std::vector<int8_t>& qv, const std::vector<unsigned>& s, const std::vector<unsigned>& e, unsigned eb,
         size_t offset) {
    const size_t pd = qv.size();
    sign_store.assign(pd / 8 + 128, 0);
    ex_store.assign(pd * eb / 8 + 128, 0);
    q_store.assign(pd + 128, 0);
    sign = align(sign_store.data()) + offset;
    ex = align(ex_store.data()) + offset;
    q = reinterpret_cast<int8_t*>(align(q_store.data()) + offset);
    const rabitq::ex_layout::Sections sec = rabitq::ex_layout::sections(pd, eb);
    for (size_t i = 0; i < pd; ++i) {
      sign[i / 8] |= static_cast<uint8_t>(s[i] << (i % 8));
      rabitq::ex_layout::put(ex, sec, eb, i, e[i]);
      q[i] = qv[i];
    }
  }
  static uint8_t* align(uint8_t* p) {
    return reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t(63));
  }
};

TEST_CASE("every table has ex_ip; avx512 uses VNNI when the CPU has it" * doctest::test_suite("ex_kernels")) {
  for (rabitq::SimdLevel l : {rabitq::SimdLevel::kScalar, rabitq::SimdLevel::kAvx2, rabitq::SimdLevel::kAvx512}) {
    const rabitq::Kernels* k = rabitq::kernels_for(l);
    if (k == nullptr) continue;
    CHECK_MESSAGE((k->ex_ip != nullptr), rabitq::level_name(l));
  }
  const auto vs = ex_variants();
  CHECK((!vs.empty() && std::strcmp(vs[0].name, "scalar") == 0));
  const rabitq::Kernels* k512 = rabitq::kernels_for(rabitq::SimdLevel::kAvx512);
  if (k512 != nullptr && rabitq::cpu_has_avx512_vnni()) {
    bool found = false;
    for (const auto& v : vs)
      if (std::strcmp(v.name, "avx512vnni") == 0) found = (v.fn == k512->ex_ip);
    CHECK_MESSAGE(found, "the avx512 table should hold the VNNI ex_ip");
  }
  // AArch64: the base NEON version always, and the neon level takes the SDOT
  // one exactly when it is listed (the CPU has dotprod).
  const rabitq::Kernels* kneon = rabitq::kernels_for(rabitq::SimdLevel::kNeon);
  if (kneon != nullptr) {
    const rabitq::ExIpFn* base = nullptr;
    const rabitq::ExIpFn* dot = nullptr;
    for (const auto& v : vs) {
      if (std::strcmp(v.name, "neon") == 0) base = &v.fn;
      if (std::strcmp(v.name, "neondotprod") == 0) dot = &v.fn;
    }
    REQUIRE(base != nullptr);
    CHECK((*base == rabitq::neon_kernels()->ex_ip));
    CHECK((kneon->ex_ip == (dot != nullptr ? *dot : *base)));
  }
  std::printf("  ex_ip variants:");
  for (const auto& v : vs) std::printf(" %s", v.name);
  std::printf("\n");
}

TEST_CASE("layout put/get round-trips every value, sections are exactly padded_dim*ex_bits/8 bytes" *
          doctest::test_suite("ex_kernels")) {
  Rng rng(3);
  for (size_t pd : {64, 128, 960, 1024}) {
    for (unsigned eb = 1; eb <= 8; ++eb) {
      const auto sec = rabitq::ex_layout::sections(pd, eb);
      const size_t bytes = pd * eb / 8;
      size_t end = sec.off1 + ((eb & 1u) ? pd / 8 : 0);
      if (eb == 8) end = pd;
      CHECK_MESSAGE(end == bytes, "pd=" << pd << " eb=" << eb);
      std::vector<uint8_t> ex(bytes, 0);
      std::vector<unsigned> v(pd);
      for (size_t i = 0; i < pd; ++i) {
        v[i] = static_cast<unsigned>(rng.below(size_t(1) << eb));
        rabitq::ex_layout::put(ex.data(), sec, eb, i, v[i]);
      }
      size_t bad = 0;
      for (size_t i = 0; i < pd; ++i) bad += rabitq::ex_layout::get(ex.data(), sec, eb, i) != v[i];
      CHECK_MESSAGE(bad == 0, "pd=" << pd << " eb=" << eb << " bad=" << bad);
    }
  }
}

TEST_CASE("ex_ip equals scalar and the definition at every level, bits 2..9" * doctest::test_suite("ex_kernels")) {
  Rng rng(17);
  const auto vs = ex_variants();
  // Paddings of d = 1, 100, 128, 130, 960, 1000, 1536 and a few more.
  for (size_t pd : {64, 128, 192, 256, 320, 960, 1024, 1536}) {
    for (unsigned eb = 1; eb <= 8; ++eb) {
      for (int rep = 0; rep < 8; ++rep) {
        std::vector<int8_t> q(pd);
        std::vector<unsigned> s(pd), e(pd);
        for (size_t i = 0; i < pd; ++i) {
          // rep 0: the extremes (all codes and query magnitudes maximal);
          // rep 1: all codes 0 against q = -127, the most negative operand of
          // kernels that re-center u (u - 128 = -128 at 8 and 9 bits); rep 2:
          // all codes maximal against q = -127.
          if (rep <= 2) {
            q[i] = rep == 0 ? int8_t(i % 2 ? 127 : -127) : int8_t(-127);
            s[i] = rep == 1 ? 0u : 1u;
            e[i] = rep == 1 ? 0u : (1u << eb) - 1;
            continue;
          }
          q[i] = static_cast<int8_t>(int(rng.below(255)) - 127);
          s[i] = static_cast<unsigned>(rng.below(2));
          e[i] = static_cast<unsigned>(rng.below(size_t(1) << eb));
        }
        const int64_t want = plain_ex_ip(q, s, e, eb);
        Packed p(q, s, e, eb, static_cast<size_t>(rep) % 5);
        for (const auto& v : vs) {
          const int64_t got = v.fn(p.q, p.sign, p.ex, pd, eb);
          CHECK_MESSAGE(got == want, v.name << " pd=" << pd << " bits=" << eb + 1 << " rep=" << rep << " got " << got
                                            << " want " << want);
        }
      }
    }
  }
}

TEST_CASE("ex_ip does not overflow at the largest dimension and code" * doctest::test_suite("ex_kernels")) {
  const size_t pd = 65536;
  const auto vs = ex_variants();
  for (int sgn : {1, -1}) {
    std::vector<int8_t> q(pd, static_cast<int8_t>(127 * sgn));
    std::vector<unsigned> s(pd, 1u), e(pd, 255u);
    const int64_t want = plain_ex_ip(q, s, e, 8);
    CHECK(want == int64_t(sgn) * 127 * 511 * int64_t(pd));
    Packed p(q, s, e, 8, 0);
    for (const auto& v : vs) CHECK_MESSAGE(v.fn(p.q, p.sign, p.ex, pd, 8) == want, v.name);
  }
}

// ---- encoder ---------------------------------------------------------------------

std::vector<float> gaussian(size_t n, Rng& rng, double scale = 1.0) {
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(rng.normal() * scale);
  return v;
}

TEST_CASE("bf16_at_least never rounds a bound down, and is within 2^-7 above it" * doctest::test_suite("ex_code")) {
  Rng rng(17);
  for (int i = 0; i < 100000; ++i) {
    const float x = std::ldexp(rng.uniform(1.f, 2.f), static_cast<int>(rng.uniform(-100.f, 100.f)));
    const float y = rabitq::bf16_to_float(rabitq::bf16_at_least(x));
    CHECK_MESSAGE(y >= x, x);
    CHECK_MESSAGE(y <= x * (1.f + 1.f / 128.f), x);
  }
  for (float x : {0.f, 1.f, 0.5f, 3.f, 65536.f}) CHECK(rabitq::bf16_to_float(rabitq::bf16_at_least(x)) == x);  // exact
  CHECK(rabitq::bf16_to_float(rabitq::bf16_at_least(3.4e38f)) ==
        std::numeric_limits<float>::infinity());  // past the largest: infinity, still >= x
  CHECK(rabitq::bf16_to_float(rabitq::bf16_at_least(std::numeric_limits<float>::infinity())) ==
        std::numeric_limits<float>::infinity());
  CHECK(std::isnan(rabitq::bf16_to_float(rabitq::bf16_at_least(std::numeric_limits<float>::quiet_NaN()))));
  CHECK(rabitq::bf16_to_float(rabitq::bf16_at_least(-1.5f)) == -1.5f);
}

TEST_CASE("encoder: signs, levels and factors; exact rescale never worse than constant" *
          doctest::test_suite("ex_code")) {
  Rng rng(5);
  for (size_t pd : {64, 128, 960}) {
    for (unsigned bits = 2; bits <= 9; ++bits) {
      // The exact search costs ~ D 2^bits heap steps: long vectors at a few bits.
      if (pd > 128 && bits != 2 && bits != 5 && bits != 8) continue;
      ExEncoder exact(pd, bits, ExRescale::kExact), fast(pd, bits, ExRescale::kConstant),
          search(pd, bits, ExRescale::kSearch);
      CHECK(exact.code_bytes() == pd * (bits - 1) / 8);
      CHECK(fast.constant_scale() > 0.f);
      const unsigned eb = bits - 1;
      const auto sec = rabitq::ex_layout::sections(pd, eb);
      for (int rep = 0; rep < 3; ++rep) {
        std::vector<float> o = gaussian(pd, rng, 0.1 + rep);
        for (const ExEncoder* enc : {&exact, &fast, &search}) {
          std::vector<uint8_t> ex(enc->code_bytes() + 1, 0xAB), sign(pd / 8);
          ExFactor f;
          enc->encode(o.data(), ex.data(), &f, sign.data());
          CHECK(ex.back() == 0xAB);  // wrote exactly code_bytes()
          double ip = 0, xx = 0, n2 = 0;
          size_t bad = 0;
          for (size_t i = 0; i < pd; ++i) {
            const unsigned sb = (sign[i / 8] >> (i % 8)) & 1u;
            bad += sb != (o[i] > 0.f ? 1u : 0u);
            const double xb =
                double((sb << eb) + rabitq::ex_layout::get(ex.data(), sec, eb, i)) - (double(1u << bits) - 1.0) / 2.0;
            bad += (xb > 0) != (o[i] > 0.f);
            ip += xb * o[i];
            xx += xb * xb;
            n2 += double(o[i]) * o[i];
          }
          CHECK_MESSAGE(bad == 0, "pd=" << pd << " bits=" << bits);
          // ip_scale = -2 ||o||^2 / <xbar, o>.
          CHECK_MESSAGE(std::fabs(f.ip_scale + 2.0 * n2 / ip) <= 1e-4 * 2.0 * n2 / ip, "pd=" << pd << " bits=" << bits);
          CHECK((f.error_scale() >= 0.f && f.quant_scale() > 0.f));
          const double a = ip / std::sqrt(xx * n2);
          CHECK_MESSAGE(std::fabs(a - enc->alignment(o.data())) < 1e-9, "pd=" << pd << " bits=" << bits);
        }
        const double ae = exact.alignment(o.data()), af = fast.alignment(o.data()), as = search.alignment(o.data());
        CHECK_MESSAGE(ae >= af - 1e-12, "pd=" << pd << " bits=" << bits << " exact " << ae << " constant " << af);
        CHECK_MESSAGE(ae >= as - 1e-12, "pd=" << pd << " bits=" << bits << " exact " << ae << " search " << as);
        CHECK_MESSAGE(as >= af - 1e-12, "pd=" << pd << " bits=" << bits << " search " << as << " constant " << af);
      }
    }
  }
}

TEST_CASE("a zero residual gets zero factors and an exact estimate" * doctest::test_suite("ex_code")) {
  ExEncoder enc(128, 4, ExRescale::kExact);
  std::vector<float> o(128, 0.f), q(128);
  Rng rng(9);
  for (auto& v : q) v = rng.uniform(-1.f, 1.f);
  std::vector<uint8_t> ex(enc.code_bytes()), sign(16);
  ExFactor f;
  enc.encode(o.data(), ex.data(), &f, sign.data());
  CHECK((f.ip_scale == 0.f && f.error_scale() == 0.f && f.quant_scale() == 0.f));
  ExQuery eq;
  eq.prepare(q.data(), 128, 4);
  const auto e = rabitq::ex_estimate(rabitq::scalar_kernels(), eq, sign.data(), ex.data(), 0.f, f, 1.9f);
  CHECK((std::fabs(e.distance - eq.qnorm2) <= 1e-6f * eq.qnorm2 && e.bound == 0.f));
}

TEST_CASE("bad parameters are RangeErrors" * doctest::test_suite("ex_code")) {
  CHECK_THROWS_AS(ExEncoder(128, 1, ExRescale::kExact), rabitq::Error);
  CHECK_THROWS_AS(ExEncoder(128, 10, ExRescale::kExact), rabitq::Error);
  CHECK_THROWS_AS(ExEncoder(100, 4, ExRescale::kExact), rabitq::Error);
  CHECK_THROWS_AS(ExEncoder(128, 4, static_cast<ExRescale>(7)), rabitq::Error);
}

// ---- estimator quality -------------------------------------------------------------

std::string repo_root() {
  std::string f = __FILE__;
  const size_t p = f.rfind("native/tests/");
  return p == std::string::npos ? std::string("./") : f.substr(0, p);
}

bool read_fvecs(const std::string& path, size_t max_rows, size_t* dim, std::vector<float>* out) {
  FILE* fp = std::fopen(path.c_str(), "rb");
  if (!fp) return false;
  out->clear();
  int32_t d = 0;
  size_t rows = 0;
  while (rows < max_rows && std::fread(&d, 4, 1, fp) == 1) {
    std::vector<float> row(static_cast<size_t>(d));
    if (std::fread(row.data(), 4, row.size(), fp) != row.size()) break;
    out->insert(out->end(), row.begin(), row.end());
    ++rows;
  }
  std::fclose(fp);
  *dim = static_cast<size_t>(d);
  return rows > 0;
}

// A small IVF: nc centroids by a few Lloyd steps, every vector's residual
// and every query's residual against each centroid, all rotated.
struct Residuals {
  size_t dim = 0, pd = 0, n = 0, nq = 0, nc = 0;
  std::vector<float> o;       // n x pd rotated vector residuals
  std::vector<uint32_t> lab;  // n
  std::vector<float> qr;      // nq x nc x pd rotated query residuals
};

Residuals make_residuals(const std::vector<float>& base, size_t n, const std::vector<float>& queries, size_t nq,
                         size_t dim, size_t nc, uint64_t seed) {
  Residuals r;
  r.dim = dim;
  r.pd = rabitq::padded_dim_for(dim);
  r.n = n;
  r.nq = nq;
  r.nc = nc;
  std::vector<float> cent(nc * dim);
  for (size_t c = 0; c < nc; ++c) std::copy(&base[(c * 37 % n) * dim], &base[(c * 37 % n) * dim] + dim, &cent[c * dim]);
  r.lab.assign(n, 0);
  for (int it = 0; it < 4; ++it) {
    for (size_t i = 0; i < n; ++i) {
      float best = INFINITY;
      for (size_t c = 0; c < nc; ++c) {
        float d = 0;
        for (size_t t = 0; t < dim; ++t) {
          const float u = base[i * dim + t] - cent[c * dim + t];
          d += u * u;
        }
        if (d < best) {
          best = d;
          r.lab[i] = static_cast<uint32_t>(c);
        }
      }
    }
    std::vector<double> sum(nc * dim, 0.0);
    std::vector<size_t> cnt(nc, 0);
    for (size_t i = 0; i < n; ++i) {
      cnt[r.lab[i]]++;
      for (size_t t = 0; t < dim; ++t) sum[r.lab[i] * dim + t] += base[i * dim + t];
    }
    for (size_t c = 0; c < nc; ++c)
      if (cnt[c])
        for (size_t t = 0; t < dim; ++t) cent[c * dim + t] = static_cast<float>(sum[c * dim + t] / double(cnt[c]));
  }
  rabitq::Rotation rot(rabitq::RotationKind::kFht, dim, r.pd, seed);
  std::vector<float> tmp(dim), rc(nc * r.pd);
  for (size_t c = 0; c < nc; ++c) rot.apply(&cent[c * dim], &rc[c * r.pd]);
  r.o.resize(n * r.pd);
  for (size_t i = 0; i < n; ++i) {
    rot.apply(&base[i * dim], &r.o[i * r.pd]);
    for (size_t t = 0; t < r.pd; ++t) r.o[i * r.pd + t] -= rc[r.lab[i] * r.pd + t];
  }
  r.qr.resize(nq * nc * r.pd);
  std::vector<float> qrot(r.pd);
  for (size_t q = 0; q < nq; ++q) {
    rot.apply(&queries[q * dim], qrot.data());
    for (size_t c = 0; c < nc; ++c)
      for (size_t t = 0; t < r.pd; ++t) r.qr[(q * nc + c) * r.pd + t] = qrot[t] - rc[c * r.pd + t];
  }
  return r;
}

struct Quality {
  double mean_signed = 0, mae = 0, coverage = 0, mean_bound = 0, mean_sq_dist = 0;
  size_t pairs = 0;
};

// Every (query, vector) pair: the estimate of ||o - q||^2 against the truth.
Quality measure(const Residuals& r, unsigned bits, ExRescale mode, float epsilon) {
  ExEncoder enc(r.pd, bits, mode);
  const size_t cb = enc.code_bytes();
  std::vector<uint8_t> ex(r.n * cb), sign(r.n * r.pd / 8);
  std::vector<ExFactor> fac(r.n);
  std::vector<float> rns(r.n);
  for (size_t i = 0; i < r.n; ++i) {
    enc.encode(&r.o[i * r.pd], &ex[i * cb], &fac[i], &sign[i * r.pd / 8]);
    double n2 = 0;
    for (size_t t = 0; t < r.pd; ++t) n2 += double(r.o[i * r.pd + t]) * r.o[i * r.pd + t];
    rns[i] = static_cast<float>(n2);
  }
  const rabitq::Kernels& k = rabitq::active_kernels();
  Quality qa;
  double sum = 0, sabs = 0, sb = 0, sd = 0;
  size_t in = 0, pairs = 0;
  ExQuery eq;
  for (size_t q = 0; q < r.nq; ++q) {
    for (size_t c = 0; c < r.nc; ++c) {
      const float* qres = &r.qr[(q * r.nc + c) * r.pd];
      eq.prepare(qres, r.pd, bits);
      for (size_t i = 0; i < r.n; ++i) {
        if (r.lab[i] != c) continue;
        const auto e = rabitq::ex_estimate(k, eq, &sign[i * r.pd / 8], &ex[i * cb], rns[i], fac[i], epsilon);
        double truth = 0;
        for (size_t t = 0; t < r.pd; ++t) {
          const double u = double(r.o[i * r.pd + t]) - qres[t];
          truth += u * u;
        }
        const double err = double(e.distance) - truth;
        sum += err;
        sabs += std::fabs(err);
        sb += e.bound;
        sd += truth;
        in += std::fabs(err) <= e.bound;
        ++pairs;
      }
    }
  }
  qa.pairs = pairs;
  qa.mean_signed = sum / double(pairs);
  qa.mae = sabs / double(pairs);
  qa.coverage = double(in) / double(pairs);
  qa.mean_bound = sb / double(pairs);
  qa.mean_sq_dist = sd / double(pairs);
  return qa;
}

void check_quality(const Residuals& r, const char* what) {
  const float epsilon = 1.9f;
  double prev_mae = INFINITY;
  for (unsigned bits : {2u, 3u, 4u, 5u, 7u, 9u}) {
    const Quality qa = measure(r, bits, ExRescale::kConstant, epsilon);
    // The exact search is slow at many bits (see ex_bench); search mode is
    // checked against it where it is affordable under the sanitizers.
    const Quality qx = bits <= 4 ? measure(r, bits, ExRescale::kExact, epsilon) : Quality{};
    const Quality qs = measure(r, bits, ExRescale::kSearch, epsilon);
    std::printf(
        "  %s bits=%u pairs=%zu  constant: mae %.5g (%.3g%% of dist) bias %.3g cover %.4f bound %.4g | exact: mae %.5g "
        "bias %.3g cover %.4f | search: mae %.5g bias %.3g cover %.4f\n",
        what, bits, qa.pairs, qa.mae, 100.0 * qa.mae / qa.mean_sq_dist, qa.mean_signed, qa.coverage, qa.mean_bound,
        qx.mae, qx.mean_signed, qx.coverage, qs.mae, qs.mean_signed, qs.coverage);
    for (const Quality* m : {&qa, &qx, &qs}) {
      if (m->pairs == 0) continue;
      // Unbiased: the mean signed error is a small fraction of the mean error.
      CHECK_MESSAGE(std::fabs(m->mean_signed) <= 0.1 * m->mae,
                    what << " bits=" << bits << " bias " << m->mean_signed << " mae " << m->mae);
      CHECK_MESSAGE(m->coverage >= 0.99, what << " bits=" << bits << " coverage " << m->coverage);
    }
    CHECK_MESSAGE(qs.mae < prev_mae, what << " bits=" << bits << " mae " << qs.mae << " not below " << prev_mae);
    prev_mae = qs.mae;
    // The search finds (nearly) the exact optimum; the constant scale is
    // never better by more than noise.
    if (qx.pairs) CHECK_MESSAGE(qs.mae <= 1.02 * qx.mae, what << " bits=" << bits);
    CHECK_MESSAGE(qs.mae <= 1.02 * qa.mae, what << " bits=" << bits);
  }
}

TEST_CASE("estimator on siftsmall: unbiased, bound covers >= 99% at epsilon 1.9, error falls with bits" *
          doctest::test_suite("ex_code")) {
  size_t dim = 0;
  std::vector<float> base, queries;
  const std::string root = repo_root();
  const bool ok = read_fvecs(root + "datasets/siftsmall/base.fvecs", 2000, &dim, &base) &&
                  read_fvecs(root + "datasets/siftsmall/query.fvecs", 40, &dim, &queries);
  CHECK_MESSAGE(ok, "cannot read " << root << "datasets/siftsmall");
  if (!ok) return;
  const Residuals r = make_residuals(base, base.size() / dim, queries, queries.size() / dim, dim, 8, 7);
  check_quality(r, "siftsmall");
}

TEST_CASE("estimator on 960-d synthetic data: unbiased, covered, error falls with bits" *
          doctest::test_suite("ex_code")) {
  const size_t dim = 960, n = 400, nq = 12;
  Rng rng(21);
  // Anisotropic clusters: 4 centers, per-dimension scales from 0.1 to 2.
  std::vector<float> scale(dim), centers(4 * dim), base(n * dim), queries(nq * dim);
  for (auto& s : scale) s = rng.uniform(0.1f, 2.f);
  for (auto& c : centers) c = rng.uniform(-3.f, 3.f);
  for (size_t i = 0; i < n + nq; ++i) {
    float* x = i < n ? &base[i * dim] : &queries[(i - n) * dim];
    const size_t c = rng.below(4);
    for (size_t t = 0; t < dim; ++t) x[t] = centers[c * dim + t] + static_cast<float>(rng.normal()) * scale[t];
  }
  const Residuals r = make_residuals(base, n, queries, nq, dim, 4, 11);
  check_quality(r, "synthetic960");
}

// ---- micro-benchmark (RABITQ_EX_BENCH=1; a Release build) ---------------------------

TEST_CASE("encode and ex_ip speed" * doctest::test_suite("ex_bench")) {
  if (std::getenv("RABITQ_EX_BENCH") == nullptr) {
    std::printf("  (set RABITQ_EX_BENCH=1 to run)\n");
    return;
  }
  using clk = std::chrono::steady_clock;
  Rng rng(1);
  double sink = 0;
  for (size_t dim : {128, 960}) {
    const size_t pd = rabitq::padded_dim_for(dim);
    const size_t nv = dim == 128 ? 4000 : 600;
    std::vector<float> xs = gaussian(nv * dim, rng), o(pd), rc = gaussian(pd, rng, 0.1);
    rabitq::Rotation rot(rabitq::RotationKind::kFht, dim, pd, 3);
    // Today's 1-bit encode: rotate, subtract, norms, signs, factors.
    auto t0 = clk::now();
    std::vector<uint8_t> bytes(pd / 8);
    for (size_t v = 0; v < nv; ++v) {
      rot.apply(&xs[v * dim], o.data());
      double n2 = 0, l1 = 0;
      for (size_t i = 0; i < pd; ++i) {
        o[i] -= rc[i];
        n2 += double(o[i]) * o[i];
        l1 += std::fabs(double(o[i]));
      }
      for (size_t p = 0; p < pd / 8; ++p) {
        uint8_t b = 0;
        for (size_t t = 0; t < 8; ++t) b |= static_cast<uint8_t>((o[p * 8 + t] > 0.f) << t);
        bytes[p] = b;
      }
      sink += n2 / l1 + bytes[0];
    }
    const double one_bit = std::chrono::duration<double, std::nano>(clk::now() - t0).count() / double(nv);
    std::printf("  D=%zu 1-bit encode (rotate+signs+factors): %.0f ns/vector\n", dim, one_bit);
    std::vector<float> os(nv * pd);
    for (size_t v = 0; v < nv; ++v) rot.apply(&xs[v * dim], &os[v * pd]);
    for (unsigned bits = 2; bits <= 9; ++bits) {
      double ns[3];
      for (int mode = 0; mode < 3; ++mode) {
        const auto t_build = clk::now();
        ExEncoder enc(pd, bits, static_cast<ExRescale>(mode));
        const double build_ms = std::chrono::duration<double, std::milli>(clk::now() - t_build).count();
        std::vector<uint8_t> ex(enc.code_bytes());
        ExFactor f;
        const size_t reps = mode == 0 && bits >= 7 ? std::max<size_t>(nv / 8, 20) : nv;
        t0 = clk::now();
        for (size_t v = 0; v < reps; ++v) {
          enc.encode(&os[v * pd], ex.data(), &f);
          sink += f.ip_scale;
        }
        ns[mode] = std::chrono::duration<double, std::nano>(clk::now() - t0).count() / double(reps);
        if (mode == 1) std::printf("    (constant fit %.1f ms)", build_ms);
      }
      std::printf("  D=%zu bits=%u encode ex: exact %.0f, constant %.0f, search %.0f ns/vector\n", dim, bits, ns[0],
                  ns[1], ns[2]);
    }
    // Kernel speed: one call per vector over a set larger than L1.
    const size_t nk = 2048;
    for (unsigned bits = 2; bits <= 9; ++bits) {
      const unsigned eb = bits - 1;
      const size_t cb = pd * eb / 8;
      std::vector<uint8_t> ex(nk * cb), sign(nk * pd / 8);
      std::vector<int8_t> q(pd);
      for (auto& b : ex) b = static_cast<uint8_t>(rng.next());
      for (auto& b : sign) b = static_cast<uint8_t>(rng.next());
      for (auto& v : q) v = static_cast<int8_t>(int(rng.below(255)) - 127);
      std::printf("  D=%zu bits=%u ex_ip ns/vector:", dim, bits);
      for (const auto& v : ex_variants()) {
        int64_t acc = 0;
        const size_t rounds = 20;
        t0 = clk::now();
        for (size_t r = 0; r < rounds; ++r)
          for (size_t i = 0; i < nk; ++i) acc += v.fn(q.data(), &sign[i * pd / 8], &ex[i * cb], pd, eb);
        const double t = std::chrono::duration<double, std::nano>(clk::now() - t0).count() / double(rounds * nk);
        sink += double(acc);
        std::printf(" %s %.1f", v.name, t);
      }
      std::printf("\n");
    }
  }
  std::printf("  (sink %g)\n", sink);
}

}  // namespace
