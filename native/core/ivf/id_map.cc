#include "id_map.h"

#include <algorithm>
#include <string>

#include "../common.h"
#include "cluster_store.h"

namespace rabitq {

std::vector<uint64_t> checked_ids(const uint32_t* ids32, const uint64_t* ids64, size_t n) {
  std::vector<uint64_t> ids(n);
  const uint64_t max = ids64 ? kMaxId64 : kMaxId32;
  for (size_t i = 0; i < n; ++i) {
    ids[i] = ids64 ? ids64[i] : ids32[i];
    if (ids[i] > max)
      throw Error(ErrorKind::kRange, "ids[" + std::to_string(i) + "] = " + std::to_string(ids[i]) + " is above " +
                                         std::to_string(max) +
                                         (ids64 ? "" : " (32-bit ids must fit an Int32Array; use BigUint64Array ids)"));
  }
  std::vector<std::pair<uint64_t, size_t>> sorted(n);
  for (size_t i = 0; i < n; ++i) sorted[i] = {ids[i], i};
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 1; i < n; ++i)
    if (sorted[i].first == sorted[i - 1].first)
      throw Error(ErrorKind::kRange, "duplicate id " + std::to_string(sorted[i].first) + " at rows " +
                                         std::to_string(sorted[i - 1].second) + " and " +
                                         std::to_string(sorted[i].second));
  return ids;
}

void check_stored_ids(const ClusterStore& store, const std::string& name) {
  // Sorting a copy costs 8 bytes per vector for the moment of the check; the
  // id map (about 40 bytes per vector) is only made when add/remove need it.
  // The range matters as much as distinctness: search hands ids to JS as
  // Int32Array / BigInt64Array, where an id above the width's maximum would
  // come out negative, i.e. look like the "no result" marker or worse.
  const uint64_t max = store.ids64() ? kMaxId64 : kMaxId32;
  std::vector<uint64_t> ids;
  ids.reserve(store.size());
  for (size_t c = 0; c < store.num_clusters(); ++c) {
    const ClusterView cl = store.view(c);
    for (size_t i = 0; i < cl.count; ++i) {
      const uint64_t id = cl.ids64 ? cl.ids64[i] : cl.ids32[i];
      if (id > max)
        throw Error(ErrorKind::kFormat, name + ": id " + std::to_string(id) + " in cluster " + std::to_string(c) +
                                            " is above " + std::to_string(max) +
                                            ", the largest id of its width (the file is damaged or forged)");
      ids.push_back(id);
    }
  }
  std::sort(ids.begin(), ids.end());
  const auto dup = std::adjacent_find(ids.begin(), ids.end());
  if (dup != ids.end())
    throw Error(ErrorKind::kFormat, name + ": id " + std::to_string(*dup) +
                                        " is stored twice (ids must be distinct; the file is damaged or forged)");
}

std::vector<uint64_t> IdMap::default_ids(size_t n, bool ids64) const {
  const uint64_t max = ids64 ? kMaxId64 : kMaxId32;
  RABITQ_THROW_IF_NOT(next_id_ + n - 1 <= max, kRange, "no free default ids left: pass ids explicitly");
  std::vector<uint64_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = next_id_ + i;
  return ids;
}

void IdMap::ensure(const ClusterStore& store) {
  if (map_) return;
  auto map = std::make_unique<std::unordered_map<uint64_t, uint64_t>>();
  map->reserve(store.size());
  for (size_t c = 0; c < store.num_clusters(); ++c) {
    const ClusterView cl = store.view(c);
    for (size_t i = 0; i < cl.count; ++i) {
      const uint64_t id = static_cast<uint64_t>(cl.id(i));
      // Only a file loaded lazily (mmap without verify) can get here with a
      // duplicate: every other load refuses them.
      if (!map->emplace(id, (uint64_t(c) << 32) | i).second)
        throw Error(ErrorKind::kFormat, "index: id " + std::to_string(id) +
                                            " is stored twice (ids must be distinct; the file is damaged or forged)");
    }
  }
  map_ = std::move(map);
}

void IdMap::check_absent(const std::vector<uint64_t>& ids) const {
  for (size_t i = 0; i < ids.size(); ++i)
    if (map_->count(ids[i]))
      throw Error(ErrorKind::kRange,
                  "ids[" + std::to_string(i) + "] = " + std::to_string(ids[i]) + " is already in the index");
}

bool IdMap::take(uint64_t id, Place* where) {
  auto it = map_->find(id);
  if (it == map_->end()) return false;
  where->cluster = it->second >> 32;
  where->pos = it->second & 0xffffffffu;
  map_->erase(it);
  return true;
}

}  // namespace rabitq
