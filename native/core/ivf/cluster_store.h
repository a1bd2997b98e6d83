// Per-cluster storage of the index (its inverted lists). Every vector has a
// row in each column: its 1-bit code (packed in FastScan blocks, see
// code_layout.h), its RaBitQ factors, with multi-bit codes its extra bits
// and their factors, its caller id (4 or 8 bytes) and, optionally, its raw
// vector. A cluster's rows live in one of two places:
// - the base block, one array per column with the clusters back to back:
//   arrays made by build/compact, or pointers into a loaded file (read or
//   mapped), kept alive by the file's blob;
// - the cluster's own growable copies, made the first time add/remove
//   changes it (copy on write); compact() moves everything back to a base.
// Columns are described by their bytes per vector only (0 = absent), so a
// per-vector array is one more entry in Column with no new regime, growth or
// compaction code. The enum order is the file's section order.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "../code_layout.h"
#include "../huge_pages.h"
#include "../quantizer.h"

namespace rabitq {

namespace persist {
class Blob;
}

enum Column : size_t {
  kCodeColumn,
  kFactorColumn,
  kExCodeColumn,    // extra bits of multi-bit codes (quantizer/ex_code.h); absent at 1 bit
  kExFactorColumn,  // their ExFactor; absent at 1 bit
  kIdColumn,
  kVectorColumn,
  kNumColumns
};

// Read-only view of one cluster for the scan: valid until the next change.
struct ClusterView {
  size_t count = 0;
  const uint8_t* codes = nullptr;
  const Factor* factors = nullptr;
  const uint8_t* ex_codes = nullptr;  // ex_bytes per vector; null at 1 bit
  const ExFactor* ex_factors = nullptr;
  size_t ex_bytes = 0;
  const uint32_t* ids32 = nullptr;  // exactly one of ids32 / ids64 is set
  const uint64_t* ids64 = nullptr;
  const float* vectors = nullptr;  // null when the index keeps no vectors
  int64_t id(size_t i) const { return ids64 ? static_cast<int64_t>(ids64[i]) : static_cast<int64_t>(ids32[i]); }
};

class ClusterStore {
 public:
  // Shape of every row: code layout, vector dimension (0 = no vectors), id
  // width and bytes of the multi-bit extra bits (0 = 1-bit codes). Drops all
  // content.
  void configure(const CodeLayout& codes, size_t dim, bool ids64, size_t ex_code_bytes = 0);

  size_t num_clusters() const { return clusters_.size(); }
  size_t size() const { return n_; }
  bool ids64() const { return ids64_; }
  bool has_vectors() const { return bytes_[kVectorColumn] != 0; }
  bool has_ex_codes() const { return bytes_[kExCodeColumn] != 0; }
  size_t row_bytes(Column col) const { return bytes_[col]; }
  uint32_t count(size_t c) const { return clusters_[c].count; }
  const uint8_t* rows(size_t c, Column col) const { return clusters_[c].rows[col]; }
  ClusterView view(size_t c) const;

  // Base regime, built here: zeroed arrays for clusters of these sizes,
  // filled through base<T>(col) (cluster c starts at row base_row(c)).
  void allocate_base(const std::vector<uint32_t>& counts);
  template <class T>
  T* base(Column col) {
    return reinterpret_cast<T*>(base_[col].data());
  }
  size_t base_row(size_t c) const { return clusters_[c].base_row; }
  // Base regime, read from a file: one pointer per column (null for an
  // absent column) into bytes that `keep` keeps alive.
  // `converted`, when set, holds columns converted from an older file
  // format that `columns` point into; kept alive like `keep`.
  void adopt_file(const std::vector<uint32_t>& counts, const std::array<const uint8_t*, kNumColumns>& columns,
                  std::shared_ptr<persist::Blob> keep, std::shared_ptr<persist::Blob> converted = nullptr);

  // Owned regime (add/remove): appends a row to cluster c, returns its
  // position. ex / ex_factor: null at 1 bit.
  size_t append(size_t c, const uint8_t* code, const Factor& factor, const uint8_t* ex, const ExFactor* ex_factor,
                uint64_t id, const float* vector);
  // Removes row pos of cluster c; the cluster's last row fills the hole.
  // Returns whether a row moved to pos (false when pos was last) and its id
  // in *moved (any u64: a forged file may hold ids no signed value keeps).
  bool remove_at(size_t c, size_t pos, uint64_t* moved);
  // Re-packs every cluster, in the row order order_of gives it, into fresh
  // base arrays, releasing growth slack and any file.
  void compact(const std::function<void(const ClusterView&, std::vector<uint32_t>& order)>& order_of);

  // Accounting (bytes): a column over all rows; a column's unused capacity
  // in owned clusters; rows still read from a mapped file; the per-cluster
  // records.
  size_t column_bytes(Column col) const { return n_ * bytes_[col]; }
  size_t growth_slack(Column col) const;
  size_t mapped_bytes() const;
  size_t bookkeeping_bytes() const { return clusters_.size() * sizeof(Cluster); }

 private:
  struct Cluster {
    uint32_t count = 0;
    size_t base_row = 0;  // first row in the base arrays
    bool owned = false;
    std::array<const uint8_t*, kNumColumns> rows{};  // base or own
    std::array<std::vector<uint8_t>, kNumColumns> own;
  };
  void point_at_base(const std::array<const uint8_t*, kNumColumns>& columns);
  void own(Cluster& cl);
  void refresh(Cluster& cl);

  CodeLayout layout_;
  std::array<size_t, kNumColumns> bytes_{};
  bool ids64_ = false;
  size_t n_ = 0;
  std::vector<Cluster> clusters_;
  std::array<HugeVector<uint8_t>, kNumColumns> base_;  // arrays made by build/compact
  std::shared_ptr<persist::Blob> blob_;                // or the file they were read from
  std::shared_ptr<persist::Blob> converted_;           // and columns converted from its older format
};

}  // namespace rabitq
