// A minimal test harness for the core: suites register cases at static-init
// time, checks count failures instead of aborting so one run reports all of
// them. Only the standard library: the tests must build without Node.
#pragma once
#include <dirent.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <functional>
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

struct Case {
  const char* suite;
  const char* name;
  std::function<void()> fn;
};

std::vector<Case>& registry();
int register_case(const char* suite, const char* name, std::function<void()> fn);
// Records a failure of the running case (the message is printed at once).
void fail(const char* file, int line, const std::string& msg);
// Number of checks done so far (reported at the end).
void count_check();
// Failures in the running case; lets a case stop early after too many.
size_t case_failures();

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

}  // namespace rabitq_test

#define RT_CONCAT2(a, b) a##b
#define RT_CONCAT(a, b) RT_CONCAT2(a, b)
#define TEST_CASE(suite, name)                                                    \
  static void RT_CONCAT(rt_case_, __LINE__)();                                    \
  static const int RT_CONCAT(rt_reg_, __LINE__) =                                 \
      ::rabitq_test::register_case(#suite, name, &RT_CONCAT(rt_case_, __LINE__)); \
  static void RT_CONCAT(rt_case_, __LINE__)()

#define CHECK(cond)                                                                  \
  do {                                                                               \
    ::rabitq_test::count_check();                                                    \
    if (!(cond)) ::rabitq_test::fail(__FILE__, __LINE__, "CHECK(" #cond ") failed"); \
  } while (0)

// CHECK with a message built from stream insertions: CHECK_MSG(a == b, "at d=" << d).
#define CHECK_MSG(cond, stream_expr)                        \
  do {                                                      \
    ::rabitq_test::count_check();                           \
    if (!(cond)) {                                          \
      std::ostringstream rt_os;                             \
      rt_os << "CHECK(" #cond ") failed: " << stream_expr;  \
      ::rabitq_test::fail(__FILE__, __LINE__, rt_os.str()); \
    }                                                       \
  } while (0)

// Expects `stmt` to throw an exception of type `type`.
#define CHECK_THROWS(stmt, type)                                                            \
  do {                                                                                      \
    ::rabitq_test::count_check();                                                           \
    bool rt_caught = false;                                                                 \
    try {                                                                                   \
      stmt;                                                                                 \
    } catch (const type&) {                                                                 \
      rt_caught = true;                                                                     \
    } catch (...) {                                                                         \
    }                                                                                       \
    if (!rt_caught) ::rabitq_test::fail(__FILE__, __LINE__, #stmt " did not throw " #type); \
  } while (0)
