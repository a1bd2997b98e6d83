// The FHT rotation against the plain stage-by-stage definition it replaced
// with a blocked, four-lane version: the rotated vectors must be the same
// bits (codes saved by older builds and the results of every search depend
// on them), for power-of-two and other padded dimensions.
#include <cmath>
#include <cstring>
#include <vector>

#include "rotation.h"
#include "testing.h"

namespace {

// The definition: per round, sign flips, then the normalised Walsh-Hadamard
// transform of the whole vector (power of two) or of the head / tail block
// followed by a butterfly of the two halves.
std::vector<float> reference_fht(const std::vector<float>& signs, size_t dim, size_t pd, const float* x) {
  std::vector<float> v(pd, 0.f);
  std::memcpy(v.data(), x, dim * sizeof(float));
  size_t block = 1;
  while (block * 2 <= pd) block *= 2;
  const size_t rounds = signs.size() / pd;
  const float inv_sqrt2 = 1.0f / std::sqrt(2.0f);
  auto fwht = [](float* w, size_t n) {
    for (size_t h = 1; h < n; h <<= 1)
      for (size_t i = 0; i < n; i += h << 1)
        for (size_t j = i; j < i + h; ++j) {
          const float a = w[j], b = w[j + h];
          w[j] = a + b;
          w[j + h] = a - b;
        }
    const float s = 1.0f / std::sqrt(static_cast<float>(n));
    for (size_t i = 0; i < n; ++i) w[i] *= s;
  };
  for (size_t r = 0; r < rounds; ++r) {
    for (size_t i = 0; i < pd; ++i) v[i] *= signs[r * pd + i];
    if (block == pd) {
      fwht(v.data(), pd);
      continue;
    }
    fwht(r % 2 == 0 ? v.data() : v.data() + (pd - block), block);
    const size_t half = pd / 2;
    for (size_t i = 0; i < half; ++i) {
      const float a = v[i], b = v[i + half];
      v[i] = (a + b) * inv_sqrt2;
      v[i + half] = (a - b) * inv_sqrt2;
    }
  }
  return v;
}

}  // namespace

TEST_CASE("the FHT rotation is bit-identical to the stage-by-stage definition" * doctest::test_suite("rotation")) {
  rabitq_test::Rng rng(7);
  const size_t shapes[][2] = {{64, 64},   {100, 128}, {128, 128}, {130, 192},
                              {256, 256}, {700, 768}, {960, 960}, {1024, 1024}};
  for (const auto& shape : shapes) {
    const size_t dim = shape[0], pd = shape[1];
    CAPTURE(dim);
    CAPTURE(pd);
    const rabitq::Rotation rot(rabitq::RotationKind::kFht, dim, pd, 11 + dim);
    std::vector<float> x(dim), out(pd);
    for (int rep = 0; rep < 5; ++rep) {
      // Values of very different magnitudes, so a changed order of additions
      // would show in the low bits.
      for (auto& v : x) v = rng.uniform(-1.f, 1.f) * std::pow(10.f, rng.uniform(-3.f, 3.f));
      rot.apply(x.data(), out.data());
      const std::vector<float> want = reference_fht(rot.state(), dim, pd, x.data());
      size_t differ = 0;
      for (size_t i = 0; i < pd; ++i) differ += std::memcmp(&out[i], &want[i], sizeof(float)) != 0;
      CHECK(differ == 0);
    }
  }
}
