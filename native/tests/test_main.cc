// doctest's runner (`rabitq_tests --test-suite=<suite>`, `--help` for more),
// plus the out-of-line parts of testing.h.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <cmath>

#include "testing.h"

namespace rabitq_test {

double Rng::normal() {
  double u1 = uniform(), u2 = uniform();
  if (u1 < 1e-300) u1 = 1e-300;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

}  // namespace rabitq_test
