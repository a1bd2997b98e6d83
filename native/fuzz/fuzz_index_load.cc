// libFuzzer target: IvfRabitqIndex::load (ivf_index_io.cc) from a byte
// buffer, as fromBuffer() does, then use of whatever loaded.
//
// Each input is tried twice: as given (the container checks: magic,
// version, geometry, checksums) and "resealed", with the file length and
// every checksum the input's own table points at recomputed, so that mutated
// META fields and section contents reach the semantic checks of the loader
// instead of stopping at a CRC mismatch. A load must succeed or throw a
// kFormat rabitq::Error. A loaded index must survive search (every mode),
// remove, add, compact and a save / load round trip: those may throw a
// rabitq::Error (a forged file can hold duplicate ids, NaN factors, ...) but
// never crash, leak or read out of bounds (run under ASan + UBSan).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "common.h"
#include "ivf_index.h"
#include "persist/blob.h"
#include "persist/crc32c.h"
#include "persist/format.h"
#include "thread_pool.h"

using rabitq::Error;
using rabitq::ErrorKind;
using rabitq::IvfRabitqIndex;
namespace persist = rabitq::persist;

namespace {

uint32_t get_u32(const std::vector<uint8_t>& b, size_t at) {
  uint32_t v;
  std::memcpy(&v, b.data() + at, 4);
  return v;
}
uint64_t get_u64(const std::vector<uint8_t>& b, size_t at) {
  uint64_t v;
  std::memcpy(&v, b.data() + at, 8);
  return v;
}
void put_u32(std::vector<uint8_t>& b, size_t at, uint32_t v) { std::memcpy(b.data() + at, &v, 4); }
void put_u64(std::vector<uint8_t>& b, size_t at, uint64_t v) { std::memcpy(b.data() + at, &v, 8); }

// Recomputes what a forger would: the file length, the CRC of every table
// entry whose bytes lie inside the buffer, then the header CRC. Read with the
// format's layout (docs/FORMAT.md), not through the reader under test.
// Returns false when there is no usable header to reseal.
bool reseal(std::vector<uint8_t>& b) {
  if (b.size() < persist::header_bytes(0)) return false;
  const uint32_t header_len = get_u32(b, 16);
  if (header_len < persist::header_bytes(0) || header_len > b.size()) return false;
  put_u64(b, 24, b.size());
  const size_t entries =
      (header_len - persist::kFixedHeaderBytes - persist::kHeaderCrcBytes) / persist::kSectionEntryBytes;
  for (size_t i = 0; i < entries; ++i) {
    const size_t e = persist::kFixedHeaderBytes + i * persist::kSectionEntryBytes;
    const uint64_t offset = get_u64(b, e + 8), length = get_u64(b, e + 16);
    if (offset > b.size() || length > b.size() - offset) continue;
    put_u32(b, e + 24, persist::crc32c(b.data() + offset, static_cast<size_t>(length)));
  }
  const size_t crc_at = header_len - persist::kHeaderCrcBytes;
  put_u32(b, crc_at, persist::crc32c(b.data(), crc_at));
  return true;
}

rabitq::ThreadPool& pool() {
  static rabitq::ThreadPool p(2);
  return p;
}

// Work per input stays bounded: the loader refuses sizes the bytes cannot
// hold, so every loop below is linear in the input (times the dimension).
void exercise(IvfRabitqIndex& ix) {
  const size_t dim = ix.dim(), n = ix.size();
  std::vector<float> queries(2 * dim);
  for (size_t i = 0; i < queries.size(); ++i) queries[i] = static_cast<float>((i * 7919) % 23) - 11.f;
  for (size_t i = 0; i < dim; ++i) queries[dim + i] = 1e19f;  // squares overflow float
  const size_t k = 5;
  std::vector<int64_t> ids(2 * k);
  std::vector<float> dists(2 * k);
  const uint64_t allowed[] = {0, 1, 2, 3, 1000};
  rabitq::Filter filter;
  filter.sorted64 = allowed;
  filter.count = 5;
  for (int mode = 0; mode < 4; ++mode) {
    rabitq::SearchParams sp;
    sp.k = k;
    sp.nprobe = mode == 3 ? 1 : ix.num_clusters();
    sp.rerank = ix.has_vectors() && mode != 1;
    sp.bitplane = mode == 2;
    sp.filter = mode == 3 ? &filter : nullptr;
    rabitq::SearchStats stats;
    try {
      ix.search(queries.data(), sp, ids.data(), dists.data(), &stats);
      for (size_t j = 0; j < k; ++j)
        if (ids[j] < -1) std::abort();
      ix.search_batch(queries.data(), 2, sp, ids.data(), dists.data(), &stats, nullptr, pool(), 0);
    } catch (const Error&) {
    }
  }
  try {
    std::vector<float> est(n), bound(n);
    ix.estimate_all(queries.data(), est.data(), bound.data(), false, n);
  } catch (const Error&) {
  }
  try {
    for (uint64_t id : {uint64_t{0}, uint64_t{1}, uint64_t{0x7fffffff}, ~uint64_t{0}}) (void)ix.contains(id);
    const uint64_t gone[] = {0, 2, 4, 0xffffffffu, ~uint64_t{0}};
    const size_t removed = ix.remove(gone, 5);
    if (removed > n) std::abort();
    if (ix.size() != n - removed) std::abort();
  } catch (const Error&) {
  }
  try {
    std::vector<float> extra(3 * dim);
    for (size_t i = 0; i < extra.size(); ++i) extra[i] = static_cast<float>(i % 5) + 0.5f;
    ix.add(extra.data(), 3, nullptr, nullptr, pool(), 0);
  } catch (const Error&) {
  }
  try {
    ix.compact();
    const std::vector<uint8_t> again = ix.to_bytes();
    auto back = IvfRabitqIndex::load(persist::Blob::copy_of(again.data(), again.size()), "buffer", false);
    if (back->size() != ix.size() || back->dim() != dim) std::abort();
  } catch (const Error&) {
  }
}

void load_and_use(const std::vector<uint8_t>& bytes, bool lazy) {
  std::unique_ptr<IvfRabitqIndex> ix;
  try {
    ix = IvfRabitqIndex::load(persist::Blob::copy_of(bytes.data(), bytes.size()), "buffer", lazy);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::kFormat) std::abort();
    return;
  }
  if (lazy) {
    try {
      ix->verify();
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kFormat) std::abort();
      return;  // the columns are corrupt: do not use them
    }
  }
  exercise(*ix);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes(data, data + size);
  load_and_use(bytes, false);
  if (reseal(bytes)) {
    load_and_use(bytes, false);
    load_and_use(bytes, true);
  }
  return 0;
}
