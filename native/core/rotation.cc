#include "rotation.h"

#include <cmath>
#include <cstring>
#include <random>

#include "common.h"
#include "kernels/kernels.h"

namespace rabitq {

namespace {

// In-place normalised Walsh-Hadamard transform of n (power of two) values.
void fwht(float* v, size_t n) {
  for (size_t h = 1; h < n; h <<= 1) {
    for (size_t i = 0; i < n; i += h << 1) {
      for (size_t j = i; j < i + h; ++j) {
        float a = v[j], b = v[j + h];
        v[j] = a + b;
        v[j + h] = a - b;
      }
    }
  }
  const float s = 1.0f / std::sqrt(static_cast<float>(n));
  for (size_t i = 0; i < n; ++i) v[i] *= s;
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
    for (size_t i = 0; i < n; ++i) v[i] *= s[i];
    if (pow2) {
      fwht(v, n);
      continue;
    }
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
