// Saving and loading an IvfRabitqIndex: the index sections of the container
// format (docs/FORMAT.md, "Index sections"). Loading validates every size
// and parameter before a single pointer into the bytes is trusted; the big
// arrays are used in place (no copy), from a heap read or a mapping.
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "common.h"
#include "ivf_index.h"
#include "persist/blob.h"
#include "persist/reader.h"
#include "persist/writer.h"

namespace rabitq {

namespace {

using persist::fourcc;

constexpr uint32_t kMeta = fourcc("META");
constexpr uint32_t kRotation = fourcc("ROTN");
constexpr uint32_t kCentroids = fourcc("CENT");
constexpr uint32_t kRotatedCentroids = fourcc("RCEN");
constexpr uint32_t kRoundingOffsets = fourcc("ROFF");
constexpr uint32_t kCounts = fourcc("CNTS");
constexpr uint32_t kCodes = fourcc("CODE");
constexpr uint32_t kFactors = fourcc("FACT");
constexpr uint32_t kIds = fourcc("IDS ");
constexpr uint32_t kVectors = fourcc("VECS");

// META: little-endian u64 fields in this order (docs/FORMAT.md).
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
  kRoundingRowsField,
  kRotationFloats,
  kMetaFields
};

constexpr uint64_t kSavedQueryBits = 4;
constexpr uint64_t kSavedRoundingRows = 64;

}  // namespace

void IvfRabitqIndex::write_sections(persist::ContainerWriter& w) const {
  // After a lazy (mmap) load the big arrays are unchecked: writing them under
  // fresh checksums would turn a corrupt file into a valid-looking one.
  if (container_) container_->verify_all();
  uint64_t meta[kMetaFields] = {};
  meta[kDim] = dim_;
  meta[kPaddedDim] = padded_dim_;
  meta[kMetric] = static_cast<uint64_t>(metric_);
  meta[kNumClusters] = num_clusters_;
  meta[kQueryBits] = kSavedQueryBits;
  meta[kRotationKind] = static_cast<uint64_t>(rotation_.kind());
  meta[kIdBytes] = ids64_ ? 8 : 4;
  meta[kStoreVectors] = has_vectors_ ? 1 : 0;
  meta[kCount] = n_;
  meta[kSeed] = seed_;
  meta[kNextId] = next_id_;
  meta[kRoundingRowsField] = rounding_offsets_.size() / padded_dim_;
  meta[kRotationFloats] = rotation_.state().size();
  w.begin_section(kMeta);
  w.write_array(meta, kMetaFields);
  w.end_section();
  auto array = [&](uint32_t tag, const auto& v) {
    w.begin_section(tag);
    w.write_array(v.data(), v.size());
    w.end_section();
  };
  array(kRotation, rotation_.state());
  array(kCentroids, centroids_);
  array(kRotatedCentroids, rotated_centroids_);
  array(kRoundingOffsets, rounding_offsets_);
  w.begin_section(kCounts);
  for (const auto& cl : clusters_) w.write_value(cl.count);
  w.end_section();
  w.begin_section(kCodes);
  for (const auto& cl : clusters_) w.write(cl.codes, cl.count * npairs_);
  w.end_section();
  w.begin_section(kFactors);
  for (const auto& cl : clusters_) w.write_array(cl.factors, cl.count);
  w.end_section();
  w.begin_section(kIds);
  for (const auto& cl : clusters_) {
    if (ids64_)
      w.write_array(cl.ids64, cl.count);
    else
      w.write_array(cl.ids32, cl.count);
  }
  w.end_section();
  if (has_vectors_) {
    w.begin_section(kVectors);
    for (const auto& cl : clusters_) w.write_array(cl.vectors, cl.count * dim_);
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
}

std::unique_ptr<IvfRabitqIndex> IvfRabitqIndex::load(std::shared_ptr<persist::Blob> blob, const std::string& name,
                                                     bool lazy) {
  std::set<uint32_t> lazy_tags;
  if (lazy) lazy_tags = {kCodes, kFactors, kIds, kVectors};
  auto container = std::make_shared<persist::Container>(persist::Container::parse(blob, name, lazy_tags));
  auto bad = [&](const std::string& what) { return Error(ErrorKind::kFormat, name + ": " + what); };
  auto sized = [&](uint32_t tag, uint64_t expected, const char* what) {
    persist::SectionView v = container->section(tag);
    if (v.size != expected)
      throw bad(std::string(what) + " section " + persist::tag_name(tag) + " holds " + std::to_string(v.size) +
                " bytes, expected " + std::to_string(expected));
    return v;
  };

  persist::SectionView mv = sized(kMeta, kMetaFields * sizeof(uint64_t), "parameter");
  uint64_t meta[kMetaFields];
  std::memcpy(meta, mv.data, sizeof(meta));
  const uint64_t dim = meta[kDim], pd = meta[kPaddedDim], nc = meta[kNumClusters], n = meta[kCount];
  if (dim < 1 || dim > 65536) throw bad("dimension " + std::to_string(dim) + " is outside 1..65536");
  if (pd != padded_dim_for(dim)) throw bad("padded dimension " + std::to_string(pd) + " does not match dimension " + std::to_string(dim));
  if (meta[kMetric] > 2) throw bad("unknown metric " + std::to_string(meta[kMetric]));
  if (nc < 1 || nc > (uint64_t(1) << 31)) throw bad("number of clusters " + std::to_string(nc) + " is out of range");
  if (n >= (uint64_t(1) << 31)) throw bad("vector count " + std::to_string(n) + " is out of range");
  if (meta[kQueryBits] != kSavedQueryBits) throw bad("query bits " + std::to_string(meta[kQueryBits]) + " are not supported");
  if (meta[kRotationKind] > 1) throw bad("unknown rotation kind " + std::to_string(meta[kRotationKind]));
  if (meta[kIdBytes] != 4 && meta[kIdBytes] != 8) throw bad("id width " + std::to_string(meta[kIdBytes]) + " is not 4 or 8");
  // The next default id is above every id ever used, so at least the count
  // (ids are distinct) and at most one past the largest id of the width
  // (kMaxId32 / kMaxId64 in ivf_index.cc). Outside that range add() with
  // default ids would collide with stored ids, or wrap around past 2^64.
  const uint64_t max_next_id = meta[kIdBytes] == 8 ? uint64_t(1) << 63 : uint64_t(1) << 31;
  if (meta[kNextId] < n || meta[kNextId] > max_next_id)
    throw bad("next free id " + std::to_string(meta[kNextId]) + " is outside " + std::to_string(n) + ".." +
              std::to_string(max_next_id));
  if (meta[kStoreVectors] > 1) throw bad("bad stored-vectors flag");
  if (meta[kRoundingRowsField] != kSavedRoundingRows) throw bad("bad number of rounding rows");
  const uint64_t rot_floats = meta[kRotationFloats];
  if (rot_floats > pd * pd) throw bad("rotation state is too large");

  std::unique_ptr<IvfRabitqIndex> idx(new IvfRabitqIndex());
  IvfRabitqIndex& ix = *idx;
  ix.init_geometry(dim);
  ix.num_clusters_ = nc;
  ix.metric_ = static_cast<Metric>(meta[kMetric]);
  ix.ids64_ = meta[kIdBytes] == 8;
  ix.has_vectors_ = meta[kStoreVectors] == 1;
  ix.n_ = n;
  ix.seed_ = meta[kSeed];
  ix.next_id_ = meta[kNextId];

  auto floats = [&](uint32_t tag, uint64_t count, const char* what) {
    persist::SectionView v = sized(tag, count * sizeof(float), what);
    std::vector<float> out(count);
    std::memcpy(out.data(), v.data, v.size);
    for (float x : out)
      if (!std::isfinite(x)) throw bad(std::string(what) + " hold a non-finite value");
    return out;
  };
  std::vector<float> rot = floats(kRotation, rot_floats, "rotation");
  ix.rotation_ = Rotation::from_state(static_cast<RotationKind>(meta[kRotationKind]), dim, pd, ix.seed_ + 1,
                                      rot.data(), rot.size());
  ix.centroids_ = floats(kCentroids, nc * dim, "centroids");
  ix.rotated_centroids_ = floats(kRotatedCentroids, nc * pd, "rotated centroids");
  ix.rounding_offsets_ = floats(kRoundingOffsets, kSavedRoundingRows * pd, "rounding offsets");
  // Offsets of randomized rounding lie in [0, 1]; a large one would push the
  // quantized query past the float -> integer range in the kernels.
  for (float x : ix.rounding_offsets_)
    if (!(x >= 0.f && x <= 1.f)) throw bad("rounding offsets hold " + std::to_string(x) + ", outside 0..1");
  ix.tiles_ = CentroidTiles(ix.centroids_.data(), nc, dim, /*half=*/true);

  persist::SectionView cv = sized(kCounts, nc * sizeof(uint32_t), "cluster size");
  ix.clusters_.assign(nc, Cluster());
  uint64_t total = 0;
  for (size_t c = 0; c < nc; ++c) {
    uint32_t count;
    std::memcpy(&count, cv.data + c * sizeof(uint32_t), sizeof(count));
    ix.clusters_[c].count = count;
    total += count;
  }
  if (total != n)
    throw bad("cluster sizes add up to " + std::to_string(total) + " vectors, the header says " + std::to_string(n));

  ix.blob_codes_ = sized(kCodes, n * ix.npairs_, "codes").data;
  ix.blob_factors_ = reinterpret_cast<const Factor*>(sized(kFactors, n * sizeof(Factor), "factors").data);
  const uint8_t* ids = sized(kIds, n * meta[kIdBytes], "ids").data;
  if (ix.ids64_)
    ix.blob_ids64_ = reinterpret_cast<const uint64_t*>(ids);
  else
    ix.blob_ids32_ = reinterpret_cast<const uint32_t*>(ids);
  if (ix.has_vectors_) {
    ix.blob_vectors_ = reinterpret_cast<const float*>(sized(kVectors, n * dim * sizeof(float), "vectors").data);
  } else if (container->has(kVectors)) {
    throw bad("holds vectors although the header says it keeps none");
  }
  ix.blob_ = blob;
  ix.blob_mapped_ = blob->mapped();
  ix.blob_name_ = name;
  if (lazy) ix.container_ = container;
  ix.point_clusters_at_base();
  return idx;
}

}  // namespace rabitq
