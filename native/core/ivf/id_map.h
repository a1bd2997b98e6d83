// Caller ids of the index (its DirectMap): the id checks, the next free
// default id, and the map id -> (cluster, position) that add/remove/contains
// need. The map is made on first use (searches never need it) and kept up
// to date by add/remove until compact() re-orders the clusters.
#pragma once
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace rabitq {

class ClusterStore;

constexpr uint64_t kMaxId32 = static_cast<uint64_t>(std::numeric_limits<int32_t>::max());
constexpr uint64_t kMaxId64 = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

// Ids given by the caller (one of the two): in range for their width, no
// duplicates. Returns them widened.
std::vector<uint64_t> checked_ids(const uint32_t* ids32, const uint64_t* ids64, size_t n);

// Throws kFormat when a stored id is above the largest id of its width
// (search would hand it to JS as a negative number) or when two stored
// vectors share an id ("<name>: id X is stored twice ..."). A file with valid checksums can still hold duplicates
// (forged or written by a buggy tool); the id map would keep only one of them, so remove() would leave the other one in
// the results.
void check_stored_ids(const ClusterStore& store, const std::string& name);

class IdMap {
 public:
  struct Place {
    size_t cluster, pos;
  };

  uint64_t next_id() const { return next_id_; }
  // Smallest id above every id ever used, so default ids never collide.
  void set_next_id(uint64_t next) { next_id_ = next; }
  void note_used(uint64_t id) { next_id_ = next_id_ > id ? next_id_ : id + 1; }
  // n fresh default ids; throws when the width has none left.
  std::vector<uint64_t> default_ids(size_t n, bool ids64) const;

  // The map (callers hold the index's lock that makes this safe).
  void ensure(const ClusterStore& store);
  void reset() { map_.reset(); }
  bool contains(uint64_t id) const { return map_->count(id) != 0; }
  // Throws kRange naming the first id already present.
  void check_absent(const std::vector<uint64_t>& ids) const;
  bool take(uint64_t id, Place* where);  // finds and forgets id
  void set(uint64_t id, size_t cluster, size_t pos) { (*map_)[id] = (uint64_t(cluster) << 32) | pos; }
  void reserve(size_t n) { map_->reserve(n); }
  // About what a node-based hash map costs per entry (node + bucket).
  size_t memory_bytes() const { return map_ ? map_->size() * 40 : 0; }

 private:
  uint64_t next_id_ = 0;
  std::unique_ptr<std::unordered_map<uint64_t, uint64_t>> map_;  // id -> cluster << 32 | position
};

}  // namespace rabitq
