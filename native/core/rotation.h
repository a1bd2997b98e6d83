// Random orthogonal transforms of the zero-padded space. RaBitQ's error
// bound assumes the codes are taken in a randomly rotated basis.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace rabitq {

enum class RotationKind : uint32_t {
  // Random sign flips + fast Walsh-Hadamard transforms, O(D log D).
  kFht = 0,
  // Gaussian matrix orthonormalised by Householder QR, O(D^2) per vector.
  kDense = 1,
};

// Largest dimension a dense rotation is built for. Making it is a
// single-threaded O(D^3) QR: about 1.5 s at 1,024 and 8 s at 2,048 on the
// development machine, 90 s at 4,096 and days at the 65,536 the index
// allows. 2,048 keeps common embedding sizes (768, 1,024, 1,536) in reach;
// above it the default FHT rotation is the one to use (and loading a saved
// dense rotation of any size is cheap: it is read, not made).
constexpr size_t kMaxDenseRotationDim = 2048;

class Rotation {
 public:
  Rotation() = default;
  Rotation(RotationKind kind, size_t dim, size_t padded_dim, uint64_t seed);

  // out[0..padded_dim) = R * [x[0..dim), 0...].
  // `scratch` must hold padded_dim floats (dense path only; may be null for FHT).
  void apply(const float* x, float* out) const;

  RotationKind kind() const { return kind_; }
  size_t dim() const { return dim_; }
  size_t padded_dim() const { return padded_dim_; }
  uint64_t seed() const { return seed_; }

  // The random state (FHT: rounds x padded_dim signs; dense: the matrix), so a
  // saved index does not depend on this build's random generators.
  const std::vector<float>& state() const { return kind_ == RotationKind::kDense ? matrix_ : signs_; }
  static Rotation from_state(RotationKind kind, size_t dim, size_t padded_dim, uint64_t seed, const float* state,
                             size_t count);

 private:
  void apply_fht(float* v) const;
  RotationKind kind_ = RotationKind::kFht;
  size_t dim_ = 0, padded_dim_ = 0;
  uint64_t seed_ = 0;
  // FHT: per round, one sign (+1/-1) per coordinate.
  std::vector<float> signs_;
  size_t rounds_ = 0, block_ = 0;
  // Dense: padded_dim x padded_dim row-major orthogonal matrix.
  std::vector<float> matrix_;
};

// Smallest multiple of 64 >= dim: codes are whole 64-bit words.
inline size_t padded_dim_for(size_t dim) { return (dim + 63) / 64 * 64; }

}  // namespace rabitq
