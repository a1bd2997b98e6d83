// Shared helpers of the C++ tests (doctest: https://github.com/doctest/doctest,
// Debian package doctest-dev). Each file's TEST_CASEs carry a
// doctest::test_suite; ctest runs one suite per entry (--test-suite=<name>).
// Only the standard library and doctest: the tests build without Node.
#pragma once
#include <dirent.h>
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace rabitq_test {

// A fresh folder under $TMPDIR (or /tmp) named <prefix>-XXXXXX, removed
// with the files in it at the end of the case.
class TempDir {
 public:
  explicit TempDir(const char* prefix) {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/" + prefix + "-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = buf.data();
  }
  ~TempDir() {
    for (const auto& f : files()) ::unlink((path_ + "/" + f).c_str());
    ::rmdir(path_.c_str());
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  std::vector<std::string> files() const {
    std::vector<std::string> out;
    if (DIR* d = ::opendir(path_.c_str())) {
      while (dirent* e = ::readdir(d)) {
        const std::string n = e->d_name;
        if (n != "." && n != "..") out.push_back(n);
      }
      ::closedir(d);
    }
    return out;
  }
  // Files left by an atomic save (their names hold ".tmp-").
  size_t temp_files() const {
    size_t n = 0;
    for (const auto& f : files()) n += f.find(".tmp-") != std::string::npos;
    return n;
  }

 private:
  std::string path_;
};

// The whole file as bytes (empty when it cannot be read).
inline std::vector<uint8_t> slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Deterministic pseudo-random numbers (splitmix64), identical on every
// platform so a failing seed can be replayed.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }
  float uniform(float lo, float hi) { return lo + static_cast<float>(uniform()) * (hi - lo); }
  size_t below(size_t n) { return static_cast<size_t>(next() % n); }
  // Standard normal (Box-Muller).
  double normal();

 private:
  uint64_t s_;
};

// Vectors around `blobs` random centres (coordinates ~ N(0, scale^2)), unit
// Gaussian noise, queries from the same blobs; truth[q] = the exact top k
// ids by squared L2 (double precision), nearest first.
struct BlobData {
  size_t n, nq, dim;
  std::vector<float> base, queries;
  std::vector<std::vector<int64_t>> truth;
};

inline BlobData gaussian_blobs(size_t n, size_t nq, size_t dim, size_t blobs, double scale, size_t k, uint64_t seed) {
  Rng rng(seed);
  BlobData d{n, nq, dim, {}, {}, {}};
  std::vector<float> centres(blobs * dim);
  for (auto& c : centres) c = static_cast<float>(rng.normal() * scale);
  auto draw = [&](std::vector<float>& out, size_t count) {
    out.resize(count * dim);
    for (size_t i = 0; i < count; ++i) {
      const size_t b = rng.below(blobs);
      for (size_t t = 0; t < dim; ++t) out[i * dim + t] = centres[b * dim + t] + static_cast<float>(rng.normal());
    }
  };
  draw(d.base, n);
  draw(d.queries, nq);
  d.truth.resize(nq);
  std::vector<std::pair<double, int64_t>> all(n);
  for (size_t q = 0; q < nq; ++q) {
    for (size_t i = 0; i < n; ++i) {
      double s = 0;
      for (size_t t = 0; t < dim; ++t) {
        const double x = double(d.queries[q * dim + t]) - double(d.base[i * dim + t]);
        s += x * x;
      }
      all[i] = {s, static_cast<int64_t>(i)};
    }
    std::partial_sort(all.begin(), all.begin() + static_cast<long>(k), all.end());
    for (size_t i = 0; i < k; ++i) d.truth[q].push_back(all[i].second);
  }
  return d;
}

}  // namespace rabitq_test
