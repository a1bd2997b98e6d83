// libFuzzer target: the container reader (persist/reader.h) on arbitrary
// bytes. Every input must either parse or throw a kFormat rabitq::Error; on a
// parse, every section view must lie inside the buffer (ASan checks the
// reads below) and verify_all() must agree with the eager checks.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <set>

#include "common.h"
#include "ivf/format.h"
#include "persist/blob.h"
#include "persist/reader.h"

using rabitq::Error;
using rabitq::ErrorKind;
namespace persist = rabitq::persist;
namespace fmt = rabitq::index_format;

namespace {

// Reads every byte of every section (out-of-bounds views show up under ASan).
unsigned touch_sections(const persist::Container& c) {
  unsigned sum = 0;
  for (const persist::SectionInfo& s : c.sections()) {
    const persist::SectionView v = c.section(s.tag);
    if (v.size != s.length) std::abort();
    for (size_t i = 0; i < v.size; ++i) sum += v.data[i];
  }
  return sum;
}

void parse(const uint8_t* data, size_t size, bool lazy) {
  static const std::set<uint32_t> kLazy = {fmt::kCodes,     fmt::kFactors, fmt::kExCodes,
                                           fmt::kExFactors, fmt::kIds,     fmt::kVectors};
  try {
    persist::Container c =
        persist::Container::parse(persist::Blob::copy_of(data, size), "buffer", lazy ? kLazy : std::set<uint32_t>{});
    volatile unsigned sink = touch_sections(c);
    (void)sink;
    if (c.version() < persist::kMinFormatVersion || c.version() > persist::kFormatVersion) std::abort();
    // An eager parse checked every CRC, so verify_all() cannot fail after it.
    bool verified = true;
    try {
      c.verify_all();
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kFormat) std::abort();
      verified = false;
    }
    if (!lazy && !verified) std::abort();
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::kFormat) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  parse(data, size, false);
  parse(data, size, true);
  return 0;
}
