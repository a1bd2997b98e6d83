// Saving and loading an IvfRabitqIndex: the index sections of the container
// format (docs/FORMAT.md, "Index sections"). Loading validates every size
// and parameter before a single pointer into the bytes is trusted; the big
// arrays are used in place (no copy), from a heap read or a mapping.
#include <array>
#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
#include <string>

#include "common.h"
#include "ivf/format.h"
#include "ivf_index.h"
#include "persist/blob.h"
#include "persist/reader.h"
#include "persist/writer.h"

namespace rabitq {

using namespace index_format;

namespace {

// The section of each per-vector column, in file order, and its name in errors.
constexpr uint32_t kColumnTags[kNumColumns] = {kCodes, kFactors, kExCodes, kExFactors, kIds, kVectors};
constexpr const char* kColumnNames[kNumColumns] = {"codes", "factors", "multi-bit codes", "multi-bit factors",
                                                   "ids",   "vectors"};

}  // namespace

void IvfRabitqIndex::write_sections(persist::ContainerWriter& w) const {
  // After a lazy (mmap) load the big arrays are unchecked: writing them under
  // fresh checksums would turn a corrupt file into a valid-looking one.
  if (container_) container_->verify_all();
  const Rotation& rotation = quantizer_.rotation();
  uint64_t meta[kMetaFields] = {};
  meta[kDim] = dim_;
  meta[kPaddedDim] = quantizer_.padded_dim();
  meta[kMetric] = static_cast<uint64_t>(space_.metric());
  meta[kNumClusters] = num_clusters_;
  meta[kQueryBits] = kSavedQueryBits;
  meta[kRotationKind] = static_cast<uint64_t>(rotation.kind());
  meta[kIdBytes] = store_.row_bytes(kIdColumn);
  meta[kStoreVectors] = store_.has_vectors() ? 1 : 0;
  meta[kCount] = store_.size();
  meta[kSeed] = seed_;
  meta[kNextId] = id_map_.next_id();
  meta[kRoundingRows] = quantizer_.rounding_rows();
  meta[kRotationFloats] = rotation.state().size();
  meta[kBits] = quantizer_.bits();
  w.begin_section(kMeta);
  w.write_array(meta, kMetaFields);
  w.end_section();
  auto array = [&](uint32_t tag, const auto& v) {
    w.begin_section(tag);
    w.write_array(v.data(), v.size());
    w.end_section();
  };
  array(kRotation, rotation.state());
  array(kCentroids, centroids_);
  array(kRotatedCentroids, quantizer_.rotated_centroids());
  array(kRoundingOffsets, quantizer_.rounding_offsets());
  const size_t nc = store_.num_clusters();
  w.begin_section(kCounts);
  for (size_t c = 0; c < nc; ++c) w.write_value(store_.count(c));
  w.end_section();
  // Each column's rows, cluster after cluster; an absent column (no
  // vectors) has no section.
  for (size_t col = 0; col < kNumColumns; ++col) {
    const size_t bytes = store_.row_bytes(static_cast<Column>(col));
    if (bytes == 0) continue;
    w.begin_section(kColumnTags[col]);
    for (size_t c = 0; c < nc; ++c) w.write(store_.rows(c, static_cast<Column>(col)), store_.count(c) * bytes);
    w.end_section();
  }
}

void IvfRabitqIndex::save(const std::string& path) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  persist::write_file_atomically(path, [&](persist::ContainerWriter& w) { write_sections(w); });
}

std::vector<uint8_t> IvfRabitqIndex::to_bytes() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return persist::write_to_memory([&](persist::ContainerWriter& w) { write_sections(w); });
}

void IvfRabitqIndex::verify() const {
  std::shared_ptr<persist::Container> c;
  {
    std::shared_lock<std::shared_mutex> lock(mu_);  // compact() resets container_
    c = container_;
  }
  if (c) c->verify_all();
  std::shared_lock<std::shared_mutex> lock(mu_);
  check_stored_ids(store_, "index");
}

std::unique_ptr<IvfRabitqIndex> IvfRabitqIndex::load(std::shared_ptr<persist::Blob> blob, const std::string& name,
                                                     bool lazy) {
  std::set<uint32_t> lazy_tags;
  if (lazy) lazy_tags.insert(std::begin(kColumnTags), std::end(kColumnTags));
  auto container = std::make_shared<persist::Container>(persist::Container::parse(blob, name, lazy_tags));
  auto bad = [&](const std::string& what) { return Error(ErrorKind::kFormat, name + ": " + what); };
  auto sized = [&](uint32_t tag, uint64_t expected, const char* what) {
    persist::SectionView v = container->section(tag);
    if (v.size != expected)
      throw bad(std::string(what) + " section " + persist::tag_name(tag) + " holds " + std::to_string(v.size) +
                " bytes, expected " + std::to_string(expected));
    return v;
  };

  // Version 1 has no bits field: its codes are 1-bit.
  const size_t meta_fields = container->version() >= 2 ? kMetaFields : kMetaFieldsV1;
  persist::SectionView mv = sized(kMeta, meta_fields * sizeof(uint64_t), "parameter");
  uint64_t meta[kMetaFields];
  meta[kBits] = 1;
  std::memcpy(meta, mv.data, meta_fields * sizeof(uint64_t));
  const uint64_t dim = meta[kDim], pd = meta[kPaddedDim], nc = meta[kNumClusters], n = meta[kCount];
  if (dim < 1 || dim > 65536) throw bad("dimension " + std::to_string(dim) + " is outside 1..65536");
  if (pd != padded_dim_for(dim))
    throw bad("padded dimension " + std::to_string(pd) + " does not match dimension " + std::to_string(dim));
  if (!MetricSpace::valid(meta[kMetric])) throw bad("unknown metric " + std::to_string(meta[kMetric]));
  if (nc < 1 || nc > (uint64_t(1) << 31)) throw bad("number of clusters " + std::to_string(nc) + " is out of range");
  if (n >= (uint64_t(1) << 31)) throw bad("vector count " + std::to_string(n) + " is out of range");
  if (meta[kQueryBits] != kSavedQueryBits)
    throw bad("query bits " + std::to_string(meta[kQueryBits]) + " are not supported");
  if (meta[kRotationKind] > 1) throw bad("unknown rotation kind " + std::to_string(meta[kRotationKind]));
  if (meta[kIdBytes] != 4 && meta[kIdBytes] != 8)
    throw bad("id width " + std::to_string(meta[kIdBytes]) + " is not 4 or 8");
  // The next default id is above every id ever used, so at least the count
  // (ids are distinct) and at most one past the largest id of the width
  // (kMaxId32 / kMaxId64, ivf/id_map.h). Outside that range add() with
  // default ids would collide with stored ids, or wrap around past 2^64.
  const uint64_t max_next_id = (meta[kIdBytes] == 8 ? kMaxId64 : kMaxId32) + 1;
  if (meta[kNextId] < n || meta[kNextId] > max_next_id)
    throw bad("next free id " + std::to_string(meta[kNextId]) + " is outside " + std::to_string(n) + ".." +
              std::to_string(max_next_id));
  if (meta[kStoreVectors] > 1) throw bad("bad stored-vectors flag");
  if (meta[kRoundingRows] != kSavedRoundingRows) throw bad("bad number of rounding rows");
  if (meta[kBits] < kMinBits || meta[kBits] > kMaxBits)
    throw bad("bits per dimension " + std::to_string(meta[kBits]) + " are outside " + std::to_string(kMinBits) + ".." +
              std::to_string(kMaxBits));
  const uint64_t rot_floats = meta[kRotationFloats];
  if (rot_floats > pd * pd) throw bad("rotation state is too large");

  std::unique_ptr<IvfRabitqIndex> idx(new IvfRabitqIndex());
  IvfRabitqIndex& ix = *idx;
  ix.init_geometry(dim, static_cast<Metric>(meta[kMetric]), meta[kIdBytes] == 8, meta[kStoreVectors] == 1,
                   static_cast<unsigned>(meta[kBits]));
  ix.num_clusters_ = nc;
  ix.seed_ = meta[kSeed];
  ix.id_map_.set_next_id(meta[kNextId]);

  auto floats = [&](uint32_t tag, uint64_t count, const char* what) {
    persist::SectionView v = sized(tag, count * sizeof(float), what);
    std::vector<float> out(count);
    std::memcpy(out.data(), v.data, v.size);
    for (float x : out)
      if (!std::isfinite(x)) throw bad(std::string(what) + " hold a non-finite value");
    return out;
  };
  std::vector<float> rot = floats(kRotation, rot_floats, "rotation");
  Rotation rotation = Rotation::from_state(static_cast<RotationKind>(meta[kRotationKind]), dim, pd, ix.seed_ + 1,
                                           rot.data(), rot.size());
  ix.centroids_ = floats(kCentroids, nc * dim, "centroids");
  std::vector<float> rotated_centroids = floats(kRotatedCentroids, nc * pd, "rotated centroids");
  std::vector<float> offsets = floats(kRoundingOffsets, kSavedRoundingRows * pd, "rounding offsets");
  // Offsets of randomized rounding lie in [0, 1]; a large one would push the
  // quantized query past the float -> integer range in the kernels.
  for (float x : offsets)
    if (!(x >= 0.f && x <= 1.f)) throw bad("rounding offsets hold " + std::to_string(x) + ", outside 0..1");
  ix.quantizer_.restore(std::move(rotation), std::move(rotated_centroids), std::move(offsets));
  ix.tiles_ = CentroidTiles(ix.centroids_.data(), nc, dim, /*half=*/true);

  persist::SectionView cv = sized(kCounts, nc * sizeof(uint32_t), "cluster size");
  std::vector<uint32_t> counts(nc);
  uint64_t total = 0;
  for (size_t c = 0; c < nc; ++c) {
    std::memcpy(&counts[c], cv.data + c * sizeof(uint32_t), sizeof(uint32_t));
    total += counts[c];
  }
  if (total != n)
    throw bad("cluster sizes add up to " + std::to_string(total) + " vectors, the header says " + std::to_string(n));

  const ClusterStore& store = ix.store_;
  std::array<const uint8_t*, kNumColumns> columns{};
  // Version 2 stored each ExFactor as three floats: converted once here
  // (8 bytes a vector on the heap, also for a mapped file).
  std::shared_ptr<persist::Blob> converted;
  for (size_t col = 0; col < kNumColumns; ++col) {
    const size_t bytes = store.row_bytes(static_cast<Column>(col));
    if (bytes == 0) continue;
    if (col == kExFactorColumn && container->version() <= 2) {
      const uint8_t* v2 = sized(kColumnTags[col], n * kExFactorBytesV2, kColumnNames[col]).data;
      std::vector<ExFactor> now(n);
      for (size_t i = 0; i < n; ++i) {
        float f[3];
        std::memcpy(f, v2 + i * kExFactorBytesV2, sizeof f);
        now[i] = ExFactor::make(f[0], f[1], f[2]);
      }
      converted = persist::Blob::copy_of(now.data(), n * sizeof(ExFactor));
      columns[col] = converted->data();
      continue;
    }
    columns[col] = sized(kColumnTags[col], n * bytes, kColumnNames[col]).data;
  }
  if (!store.has_vectors() && container->has(kVectors))
    throw bad("holds vectors although the header says it keeps none");
  if (!store.has_ex_codes() && (container->has(kExCodes) || container->has(kExFactors)))
    throw bad("holds multi-bit sections although the header says its codes have 1 bit");
  ix.store_.adopt_file(counts, columns, blob, converted);
  if (columns[kVectorColumn] != nullptr)
    blob->advise_random(columns[kVectorColumn], n * store.row_bytes(kVectorColumn));
  // A lazy (mmap) load leaves the id column unread like the other big
  // columns: verify() checks it, and so does the id map when add / remove /
  // has first need it (IdMap::ensure).
  if (!lazy) check_stored_ids(ix.store_, name);
  if (lazy) ix.container_ = container;
  return idx;
}

}  // namespace rabitq
