// Allow-list applied inside the scan (the index's IDSelector): a bitset over
// ids (bit i of byte i/8, least significant first), or an ascending list of
// 32- or 64-bit ids.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace rabitq {

struct Filter {
  const uint8_t* bits = nullptr;
  size_t nbits = 0;
  const uint32_t* sorted32 = nullptr;
  const uint64_t* sorted64 = nullptr;
  size_t count = 0;
  bool allows(uint64_t id) const {
    if (bits != nullptr) return id < nbits && ((bits[id >> 3] >> (id & 7)) & 1u);
    if (sorted32 != nullptr) return id <= 0xffffffffu && std::binary_search(sorted32, sorted32 + count, uint32_t(id));
    return std::binary_search(sorted64, sorted64 + count, id);
  }
};

}  // namespace rabitq
