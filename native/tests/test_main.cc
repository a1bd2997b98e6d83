// Runner: `rabitq_tests` runs every suite, `rabitq_tests <suite>...` only
// those named. Exit status 0 only when every check passed.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <set>

#include "testing.h"

namespace rabitq_test {

namespace {
size_t g_checks = 0;
size_t g_case_failures = 0;
const Case* g_current = nullptr;
}  // namespace

std::vector<Case>& registry() {
  static std::vector<Case> cases;
  return cases;
}

int register_case(const char* suite, const char* name, std::function<void()> fn) {
  registry().push_back(Case{suite, name, std::move(fn)});
  return 0;
}

void count_check() { ++g_checks; }
size_t case_failures() { return g_case_failures; }

void fail(const char* file, int line, const std::string& msg) {
  ++g_case_failures;
  // Print the first few failures of a case in full; then just count them.
  if (g_case_failures <= 20) {
    std::fprintf(stderr, "  FAIL %s:%d [%s / %s] %s\n", file, line, g_current ? g_current->suite : "?",
                 g_current ? g_current->name : "?", msg.c_str());
  }
}

double Rng::normal() {
  double u1 = uniform(), u2 = uniform();
  if (u1 < 1e-300) u1 = 1e-300;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

}  // namespace rabitq_test

int main(int argc, char** argv) {
  using namespace rabitq_test;
  std::set<std::string> wanted;
  for (int i = 1; i < argc; ++i) wanted.insert(argv[i]);
  std::set<std::string> known;
  for (const auto& c : registry()) known.insert(c.suite);
  for (const auto& w : wanted) {
    if (!known.count(w)) {
      std::fprintf(stderr, "unknown suite '%s'\n", w.c_str());
      return 2;
    }
  }
  size_t ran = 0, failed_cases = 0;
  for (const auto& c : registry()) {
    if (!wanted.empty() && !wanted.count(c.suite)) continue;
    g_current = &c;
    g_case_failures = 0;
    ++ran;
    auto t0 = std::chrono::steady_clock::now();
    try {
      c.fn();
    } catch (const std::exception& e) {
      fail(__FILE__, __LINE__, std::string("unexpected exception: ") + e.what());
    } catch (...) {
      fail(__FILE__, __LINE__, "unexpected non-standard exception");
    }
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (g_case_failures) ++failed_cases;
    std::printf("%s %s / %s (%.0f ms)%s\n", g_case_failures ? "FAIL" : "ok  ", c.suite, c.name, ms,
                g_case_failures > 20 ? " (more failures not shown)" : "");
    std::fflush(stdout);
  }
  std::printf("%zu cases, %zu failed, %zu checks\n", ran, failed_cases, g_checks);
  return failed_cases == 0 && ran > 0 ? 0 : 1;
}
