#include "cluster_store.h"

#include <cstring>
#include <numeric>

#include "../persist/blob.h"

namespace rabitq {

void ClusterStore::configure(const CodeLayout& codes, size_t dim, bool ids64, size_t ex_code_bytes) {
  layout_ = codes;
  ids64_ = ids64;
  bytes_[kCodeColumn] = codes.bytes_per_code();
  bytes_[kFactorColumn] = sizeof(Factor);
  bytes_[kExCodeColumn] = ex_code_bytes;
  bytes_[kExFactorColumn] = ex_code_bytes ? sizeof(ExFactor) : 0;
  bytes_[kIdColumn] = ids64 ? sizeof(uint64_t) : sizeof(uint32_t);
  bytes_[kVectorColumn] = dim * sizeof(float);
  n_ = 0;
  clusters_.clear();
  for (auto& b : base_) b = {};
  blob_.reset();
  converted_.reset();
}

ClusterView ClusterStore::view(size_t c) const {
  const Cluster& cl = clusters_[c];
  ClusterView v;
  v.count = cl.count;
  v.codes = cl.rows[kCodeColumn];
  v.factors = reinterpret_cast<const Factor*>(cl.rows[kFactorColumn]);
  v.ex_codes = cl.rows[kExCodeColumn];
  v.ex_factors = reinterpret_cast<const ExFactor*>(cl.rows[kExFactorColumn]);
  v.ex_bytes = bytes_[kExCodeColumn];
  if (ids64_)
    v.ids64 = reinterpret_cast<const uint64_t*>(cl.rows[kIdColumn]);
  else
    v.ids32 = reinterpret_cast<const uint32_t*>(cl.rows[kIdColumn]);
  v.vectors = reinterpret_cast<const float*>(cl.rows[kVectorColumn]);
  return v;
}

// Every cluster reads rows from the base (the given column arrays), back to
// back in cluster order; owned copies are dropped.
void ClusterStore::point_at_base(const std::array<const uint8_t*, kNumColumns>& columns) {
  size_t row = 0;
  for (auto& cl : clusters_) {
    cl.owned = false;
    cl.base_row = row;
    for (size_t col = 0; col < kNumColumns; ++col) {
      cl.own[col] = {};
      cl.rows[col] = bytes_[col] ? columns[col] + row * bytes_[col] : nullptr;
    }
    row += cl.count;
  }
  n_ = row;
}

void ClusterStore::allocate_base(const std::vector<uint32_t>& counts) {
  clusters_.assign(counts.size(), Cluster());
  size_t n = 0;
  for (size_t c = 0; c < counts.size(); ++c) {
    clusters_[c].count = counts[c];
    n += counts[c];
  }
  std::array<const uint8_t*, kNumColumns> columns{};
  for (size_t col = 0; col < kNumColumns; ++col) {
    base_[col].assign(n * bytes_[col], 0);
    columns[col] = base_[col].data();
  }
  blob_.reset();
  converted_.reset();
  point_at_base(columns);
}

void ClusterStore::adopt_file(const std::vector<uint32_t>& counts,
                              const std::array<const uint8_t*, kNumColumns>& columns,
                              std::shared_ptr<persist::Blob> keep, std::shared_ptr<persist::Blob> converted) {
  clusters_.assign(counts.size(), Cluster());
  for (size_t c = 0; c < counts.size(); ++c) clusters_[c].count = counts[c];
  for (auto& b : base_) b = {};
  blob_ = std::move(keep);
  converted_ = std::move(converted);
  point_at_base(columns);
}

// Copies a cluster out of the base into its own growable arrays.
void ClusterStore::own(Cluster& cl) {
  if (cl.owned) return;
  for (size_t col = 0; col < kNumColumns; ++col)
    if (bytes_[col]) cl.own[col].assign(cl.rows[col], cl.rows[col] + cl.count * bytes_[col]);
  cl.owned = true;
}

void ClusterStore::refresh(Cluster& cl) {
  for (size_t col = 0; col < kNumColumns; ++col) cl.rows[col] = bytes_[col] ? cl.own[col].data() : nullptr;
}

size_t ClusterStore::append(size_t c, const uint8_t* code, const Factor& factor, const uint8_t* ex,
                            const ExFactor* ex_factor, uint64_t id, const float* vector) {
  Cluster& cl = clusters_[c];
  own(cl);
  const size_t pos = cl.count;
  layout_.resize(cl.own[kCodeColumn], pos, pos + 1);
  cl.count = static_cast<uint32_t>(pos + 1);
  layout_.put(cl.own[kCodeColumn].data(), cl.count, pos, code);
  const uint32_t id32 = static_cast<uint32_t>(id);
  const uint8_t* row[kNumColumns] = {
      nullptr,
      reinterpret_cast<const uint8_t*>(&factor),
      ex,
      reinterpret_cast<const uint8_t*>(ex_factor),
      ids64_ ? reinterpret_cast<const uint8_t*>(&id) : reinterpret_cast<const uint8_t*>(&id32),
      reinterpret_cast<const uint8_t*>(vector)};
  for (size_t col = kCodeColumn + 1; col < kNumColumns; ++col)
    if (bytes_[col]) cl.own[col].insert(cl.own[col].end(), row[col], row[col] + bytes_[col]);
  refresh(cl);
  n_++;
  return pos;
}

bool ClusterStore::remove_at(size_t c, size_t pos, uint64_t* moved_id) {
  Cluster& cl = clusters_[c];
  own(cl);
  const size_t last = cl.count - 1;
  const bool moved = pos != last;
  if (moved) {
    std::vector<uint8_t> code(layout_.npairs);
    layout_.get(cl.own[kCodeColumn].data(), cl.count, last, code.data());
    layout_.put(cl.own[kCodeColumn].data(), cl.count, pos, code.data());
    for (size_t col = kCodeColumn + 1; col < kNumColumns; ++col)
      if (bytes_[col]) std::memcpy(&cl.own[col][pos * bytes_[col]], &cl.own[col][last * bytes_[col]], bytes_[col]);
    refresh(cl);
    *moved_id = static_cast<uint64_t>(view(c).id(pos));
  }
  layout_.resize(cl.own[kCodeColumn], cl.count, last);
  cl.count = static_cast<uint32_t>(last);
  for (size_t col = kCodeColumn + 1; col < kNumColumns; ++col)
    if (bytes_[col]) cl.own[col].resize(last * bytes_[col]);
  refresh(cl);
  n_--;
  return moved;
}

void ClusterStore::compact(const std::function<void(const ClusterView&, std::vector<uint32_t>& order)>& order_of) {
  std::array<HugeVector<uint8_t>, kNumColumns> fresh;
  for (size_t col = 0; col < kNumColumns; ++col) fresh[col] = HugeVector<uint8_t>(n_ * bytes_[col]);
  std::vector<uint8_t> code(layout_.npairs);
  std::vector<uint32_t> order;
  size_t row = 0;
  for (size_t c = 0; c < clusters_.size(); ++c) {
    const Cluster& cl = clusters_[c];
    order.resize(cl.count);
    std::iota(order.begin(), order.end(), 0u);
    order_of(view(c), order);
    for (size_t i = 0; i < cl.count; ++i) {
      const size_t from = order[i];
      layout_.get(cl.rows[kCodeColumn], cl.count, from, code.data());
      layout_.put(&fresh[kCodeColumn][row * layout_.npairs], cl.count, i, code.data());
      for (size_t col = kCodeColumn + 1; col < kNumColumns; ++col)
        if (bytes_[col])
          std::memcpy(&fresh[col][(row + i) * bytes_[col]], cl.rows[col] + from * bytes_[col], bytes_[col]);
    }
    row += cl.count;
  }
  std::array<const uint8_t*, kNumColumns> columns{};
  for (size_t col = 0; col < kNumColumns; ++col) {
    base_[col] = std::move(fresh[col]);
    columns[col] = base_[col].data();
  }
  point_at_base(columns);
  blob_.reset();
  converted_.reset();
}

size_t ClusterStore::growth_slack(Column col) const {
  size_t slack = 0;
  for (const auto& cl : clusters_)
    if (cl.owned) slack += cl.own[col].capacity() - cl.own[col].size();
  return slack;
}

size_t ClusterStore::mapped_bytes() const {
  if (!blob_ || !blob_->mapped()) return 0;
  size_t per_row = 0;
  for (size_t b : bytes_) per_row += b;
  size_t m = 0;
  for (const auto& cl : clusters_)
    if (!cl.owned) m += cl.count * per_row;
  return m;
}

}  // namespace rabitq
