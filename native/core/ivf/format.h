// The index sections of the file format (docs/FORMAT.md, "Index sections"):
// section tags, the META fields and the values this version writes. The one
// copy: the index's save/load and the tests include it. A change here that
// alters any byte on disk needs a new persist::kFormatVersion.
#pragma once
#include <cstddef>
#include <cstdint>

#include "../persist/format.h"

namespace rabitq {
namespace index_format {

using persist::fourcc;

constexpr uint32_t kMeta = fourcc("META");
constexpr uint32_t kRotation = fourcc("ROTN");
constexpr uint32_t kCentroids = fourcc("CENT");
constexpr uint32_t kRotatedCentroids = fourcc("RCEN");
constexpr uint32_t kRoundingOffsets = fourcc("ROFF");
constexpr uint32_t kCounts = fourcc("CNTS");
constexpr uint32_t kCodes = fourcc("CODE");
constexpr uint32_t kFactors = fourcc("FACT");
// Multi-bit codes (format version 2, only when META's bits > 1): the extra
// bits of each vector (quantizer/ex_code.h) and their ExFactor.
constexpr uint32_t kExCodes = fourcc("EXCD");
constexpr uint32_t kExFactors = fourcc("EXFT");
constexpr uint32_t kIds = fourcc("IDS ");
constexpr uint32_t kVectors = fourcc("VECS");

// META: little-endian u64 fields in this order.
enum MetaField : size_t {
  kDim,
  kPaddedDim,
  kMetric,
  kNumClusters,
  kQueryBits,
  kRotationKind,
  kIdBytes,
  kStoreVectors,
  kCount,
  kSeed,
  kNextId,
  kRoundingRows,
  kRotationFloats,
  kBits,  // version 2: bits per dimension of the codes, 1..9
  kMetaFields
};
// Version 1 wrote the fields before kBits (its codes are all 1-bit).
constexpr size_t kMetaFieldsV1 = kBits;

// The only values of META's query bits and rounding rows this version reads.
constexpr uint64_t kSavedQueryBits = 4;
constexpr uint64_t kSavedRoundingRows = 64;

}  // namespace index_format
}  // namespace rabitq
