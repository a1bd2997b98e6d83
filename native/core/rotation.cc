#include "rotation.h"

#include <cmath>
#include <cstring>
#include <random>
#include <utility>

#if defined(__SSE2__)
#include <xmmintrin.h>
#elif defined(__ARM_NEON)
#include <arm_neon.h>
#endif

#include "common.h"
#include "kernels/kernels.h"

namespace rabitq {

namespace {

// Four floats as one value: SSE2 on x64 and NEON on arm64 are both baseline,
// so this file (built without ISA flags) still runs the FHT four lanes at a
// time. memcpy loads and stores: no alignment is assumed.
using Float4 = float __attribute__((vector_size(16)));
inline Float4 load4(const float* p) {
  Float4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store4(float* p, Float4 v) { std::memcpy(p, &v, sizeof v); }

// Rows r0..r3 <- columns (a 4 x 4 transpose).
inline void transpose4(Float4& r0, Float4& r1, Float4& r2, Float4& r3) {
#if defined(__SSE2__)
  __m128 a = r0, b = r1, c = r2, d = r3;
  _MM_TRANSPOSE4_PS(a, b, c, d);
  r0 = a, r1 = b, r2 = c, r3 = d;
#elif defined(__ARM_NEON)
  const float32x4x2_t t01 = vtrnq_f32(r0, r1), t23 = vtrnq_f32(r2, r3);
  r0 = vcombine_f32(vget_low_f32(t01.val[0]), vget_low_f32(t23.val[0]));
  r1 = vcombine_f32(vget_low_f32(t01.val[1]), vget_low_f32(t23.val[1]));
  r2 = vcombine_f32(vget_high_f32(t01.val[0]), vget_high_f32(t23.val[0]));
  r3 = vcombine_f32(vget_high_f32(t01.val[1]), vget_high_f32(t23.val[1]));
#else
  float m[4][4];
  store4(m[0], r0), store4(m[1], r1), store4(m[2], r2), store4(m[3], r3);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < i; ++j) std::swap(m[i][j], m[j][i]);
  r0 = load4(m[0]), r1 = load4(m[1]), r2 = load4(m[2]), r3 = load4(m[3]);
#endif
}

// In-place normalised Walsh-Hadamard transform of n (power of two) values,
// each first multiplied by pre[i] when pre is given. It runs once per query
// per round (4 rounds), so it is a fixed cost of every search: the first four
// stages (h = 1..8) run on blocks of 16 values held in four registers (a
// transpose turns h = 1 and 2 into lane-wise operations), the others four
// lanes at a time, and the last stage applies the 1/sqrt(n) scale. Every
// value goes through the same float operations in the same order as in the
// plain stage-by-stage loop (test/cpp: rotation bit-identical to it), so the
// rotated queries, and thus every result, are unchanged.
void fwht(float* v, size_t n, const float* pre = nullptr) {
  const float s = 1.0f / std::sqrt(static_cast<float>(n));
  if (n < 16) {  // not reached (padded dims are multiples of 64), kept general
    if (pre)
      for (size_t i = 0; i < n; ++i) v[i] *= pre[i];
    for (size_t h = 1; h < n; h <<= 1) {
      for (size_t i = 0; i < n; i += h << 1) {
        for (size_t j = i; j < i + h; ++j) {
          float a = v[j], b = v[j + h];
          v[j] = a + b;
          v[j + h] = a - b;
        }
      }
    }
    for (size_t i = 0; i < n; ++i) v[i] *= s;
    return;
  }
  for (size_t i = 0; i < n; i += 16) {
    Float4 r0 = load4(v + i), r1 = load4(v + i + 4), r2 = load4(v + i + 8), r3 = load4(v + i + 12);
    if (pre) {
      r0 *= load4(pre + i);
      r1 *= load4(pre + i + 4);
      r2 *= load4(pre + i + 8);
      r3 *= load4(pre + i + 12);
    }
    // Transposed, row j holds entry j of each group of 4: h = 1 pairs rows
    // 0-1 and 2-3, h = 2 rows 0-2 and 1-3.
    transpose4(r0, r1, r2, r3);
    Float4 a0 = r0 + r1, a1 = r0 - r1, a2 = r2 + r3, a3 = r2 - r3;
    r0 = a0 + a2, r2 = a0 - a2, r1 = a1 + a3, r3 = a1 - a3;
    transpose4(r0, r1, r2, r3);
    a0 = r0 + r1, a1 = r0 - r1, a2 = r2 + r3, a3 = r2 - r3;  // h = 4
    r0 = a0 + a2, r2 = a0 - a2, r1 = a1 + a3, r3 = a1 - a3;  // h = 8
    if (n == 16) r0 *= s, r1 *= s, r2 *= s, r3 *= s;
    store4(v + i, r0), store4(v + i + 4, r1), store4(v + i + 8, r2), store4(v + i + 12, r3);
  }
  for (size_t h = 16; h < n; h <<= 1) {
    const bool last = (h << 1) == n;
    for (size_t i = 0; i < n; i += h << 1) {
      for (size_t j = i; j < i + h; j += 4) {
        const Float4 a = load4(v + j), b = load4(v + j + h);
        if (last) {
          store4(v + j, (a + b) * s);
          store4(v + j + h, (a - b) * s);
        } else {
          store4(v + j, a + b);
          store4(v + j + h, a - b);
        }
      }
    }
  }
}

// Householder QR of a Gaussian matrix: returns Q (n x n, row-major) with the
// column signs fixed by R's diagonal so that Q is Haar-distributed.
std::vector<float> random_orthogonal(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> gauss(0.0, 1.0);
  std::vector<double> a(n * n);
  for (auto& x : a) x = gauss(rng);
  std::vector<double> vs(n * n, 0.0);  // Householder vectors, one per column step
  std::vector<double> diag_sign(n, 1.0);
  std::vector<double> w(n);
  for (size_t k = 0; k < n; ++k) {
    double norm = 0.0;
    for (size_t i = k; i < n; ++i) norm += a[i * n + k] * a[i * n + k];
    norm = std::sqrt(norm);
    double* v = &vs[k * n];
    const double x0 = a[k * n + k];
    const double alpha = x0 >= 0 ? -norm : norm;
    diag_sign[k] = alpha >= 0 ? 1.0 : -1.0;
    for (size_t i = k; i < n; ++i) v[i] = a[i * n + k];
    v[k] -= alpha;
    double vnorm = 0.0;
    for (size_t i = k; i < n; ++i) vnorm += v[i] * v[i];
    if (vnorm <= 0.0) continue;
    vnorm = std::sqrt(vnorm);
    for (size_t i = k; i < n; ++i) v[i] /= vnorm;
    // A[k:, k:] -= 2 v (v^T A[k:, k:])
    std::fill(w.begin() + k, w.end(), 0.0);
    for (size_t i = k; i < n; ++i) {
      const double vi = v[i];
      const double* row = &a[i * n];
      for (size_t j = k; j < n; ++j) w[j] += vi * row[j];
    }
    for (size_t i = k; i < n; ++i) {
      const double vi = 2.0 * v[i];
      double* row = &a[i * n];
      for (size_t j = k; j < n; ++j) row[j] -= vi * w[j];
    }
  }
  // Q = H_0 H_1 ... H_{n-1}: apply to the identity from the last reflector.
  std::vector<double> q(n * n, 0.0);
  for (size_t i = 0; i < n; ++i) q[i * n + i] = 1.0;
  for (size_t kk = n; kk-- > 0;) {
    const double* v = &vs[kk * n];
    std::fill(w.begin(), w.end(), 0.0);
    for (size_t i = kk; i < n; ++i) {
      const double vi = v[i];
      if (vi == 0.0) continue;
      const double* row = &q[i * n];
      for (size_t j = 0; j < n; ++j) w[j] += vi * row[j];
    }
    for (size_t i = kk; i < n; ++i) {
      const double vi = 2.0 * v[i];
      if (vi == 0.0) continue;
      double* row = &q[i * n];
      for (size_t j = 0; j < n; ++j) row[j] -= vi * w[j];
    }
  }
  std::vector<float> out(n * n);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j) out[i * n + j] = static_cast<float>(q[i * n + j] * diag_sign[j]);
  return out;
}

}  // namespace

Rotation::Rotation(RotationKind kind, size_t dim, size_t padded_dim, uint64_t seed)
    : kind_(kind), dim_(dim), padded_dim_(padded_dim), seed_(seed) {
  RABITQ_THROW_IF_NOT(padded_dim >= dim && padded_dim % 64 == 0, kRange, "padded dimension must be a multiple of 64");
  if (kind == RotationKind::kDense) {
    matrix_ = random_orthogonal(padded_dim, seed);
    return;
  }
  RABITQ_THROW_IF_NOT(kind == RotationKind::kFht, kRange, "unknown rotation kind");
  block_ = 1;
  while (block_ * 2 <= padded_dim) block_ *= 2;
  rounds_ = 4;
  std::mt19937_64 rng(seed ^ 0x9e3779b97f4a7c15ULL);
  signs_.resize(rounds_ * padded_dim);
  for (auto& s : signs_) s = (rng() & 1) ? 1.0f : -1.0f;
}

Rotation Rotation::from_state(RotationKind kind, size_t dim, size_t padded_dim, uint64_t seed, const float* state,
                              size_t count) {
  RABITQ_THROW_IF_NOT(padded_dim >= dim && padded_dim % 64 == 0, kFormat, "padded dimension must be a multiple of 64");
  Rotation r;
  r.kind_ = kind;
  r.dim_ = dim;
  r.padded_dim_ = padded_dim;
  r.seed_ = seed;
  if (kind == RotationKind::kDense) {
    RABITQ_THROW_IF_NOT(count == padded_dim * padded_dim, kFormat, "rotation matrix has the wrong size");
    r.matrix_.assign(state, state + count);
    for (float v : r.matrix_)
      RABITQ_THROW_IF_NOT(std::isfinite(v), kFormat, "rotation matrix holds a non-finite value");
    // An orthogonal matrix has rows of norm 1. A forged one with a huge
    // (finite) entry made rotated vectors overflow to infinity, and the
    // multi-bit encoder of add() then cast NaN to an integer (found by
    // native/fuzz). Loose tolerance: the saved matrix is float.
    for (size_t i = 0; i < padded_dim; ++i) {
      double norm2 = 0;
      for (size_t j = 0; j < padded_dim; ++j)
        norm2 += double(r.matrix_[i * padded_dim + j]) * r.matrix_[i * padded_dim + j];
      RABITQ_THROW_IF_NOT(std::fabs(norm2 - 1.0) <= 1e-3, kFormat,
                          "rotation matrix row " + std::to_string(i) + " has squared norm " + std::to_string(norm2) +
                              ", not 1 (not a rotation)");
    }
    return r;
  }
  RABITQ_THROW_IF_NOT(kind == RotationKind::kFht, kFormat, "unknown rotation kind");
  r.block_ = 1;
  while (r.block_ * 2 <= padded_dim) r.block_ *= 2;
  RABITQ_THROW_IF_NOT(count % padded_dim == 0 && count / padded_dim >= 1 && count / padded_dim <= 64, kFormat,
                      "rotation signs have the wrong size");
  r.rounds_ = count / padded_dim;
  r.signs_.assign(state, state + count);
  for (float v : r.signs_) RABITQ_THROW_IF_NOT(v == 1.0f || v == -1.0f, kFormat, "rotation signs must be +1 or -1");
  return r;
}

void Rotation::apply_fht(float* v) const {
  const size_t n = padded_dim_;
  const bool pow2 = block_ == n;
  const float inv_sqrt2 = 1.0f / std::sqrt(2.0f);
  for (size_t r = 0; r < rounds_; ++r) {
    const float* s = &signs_[r * n];
    if (pow2) {
      fwht(v, n, s);
      continue;
    }
    for (size_t i = 0; i < n; ++i) v[i] *= s[i];
    // Not a power of two: transform the head block on even rounds and the
    // tail block on odd ones, then mix the two halves with a butterfly so
    // every coordinate reaches every other.
    fwht(r % 2 == 0 ? v : v + (n - block_), block_);
    const size_t half = n / 2;
    for (size_t i = 0; i < half; ++i) {
      float a = v[i], b = v[i + half];
      v[i] = (a + b) * inv_sqrt2;
      v[i + half] = (a - b) * inv_sqrt2;
    }
  }
}

void Rotation::apply(const float* x, float* out) const {
  const size_t n = padded_dim_;
  if (kind_ == RotationKind::kDense) {
    const Kernels& k = active_kernels();
    for (size_t i = 0; i < n; ++i) out[i] = k.dot(&matrix_[i * n], x, dim_);
    return;
  }
  std::memcpy(out, x, dim_ * sizeof(float));
  std::memset(out + dim_, 0, (n - dim_) * sizeof(float));
  apply_fht(out);
}

}  // namespace rabitq
