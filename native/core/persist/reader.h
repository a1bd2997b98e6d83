// Parses and validates the container of docs/FORMAT.md.
//
// Nothing read from a file is trusted before it is checked, and the checks
// together cover every byte: the header by its own CRC, each section by its
// CRC, and every byte outside both (padding) by being required to be zero.
// So a single flipped bit anywhere is an error at load, with one deliberate
// exception: "lazy" sections, whose CRCs are left for verify_section() /
// verify_all(). Mapping a multi-GB index and then reading all of it just to
// checksum it would throw away the point of mapping; the caller decides when
// (or whether) to pay for it.
//
// Every error is a rabitq::Error of kind kFormat whose message starts with
// the display name (file path or "buffer") and says what is wrong and where.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "blob.h"
#include "format.h"

namespace rabitq {
namespace persist {

struct SectionView {
  const uint8_t* data;
  size_t size;
};

struct SectionInfo {
  uint32_t tag;
  uint64_t offset;
  uint64_t length;
  uint32_t crc;
  bool lazy;  // CRC not checked by parse()
};

class Container {
 public:
  static Container parse(std::shared_ptr<Blob> blob, const std::string& name, const std::set<uint32_t>& lazy_tags = {});

  uint32_t version() const { return version_; }
  bool has(uint32_t tag) const { return find(tag) != nullptr; }
  // The bytes of a section; throws (kFormat, naming the tag) if it is
  // missing. The pointer stays valid while this Container or blob() lives.
  SectionView section(uint32_t tag) const;
  // Checks a section's CRC (again, if it was not lazy); throws if the tag is
  // missing or the bytes do not match.
  void verify_section(uint32_t tag) const;
  // verify_section() for every section.
  void verify_all() const;

  const std::vector<SectionInfo>& sections() const { return sections_; }
  const std::shared_ptr<Blob>& blob() const { return blob_; }
  const std::string& name() const { return name_; }

 private:
  Container() = default;
  const SectionInfo* find(uint32_t tag) const;
  void check_crc(const SectionInfo& s) const;

  std::shared_ptr<Blob> blob_;
  std::string name_;
  uint32_t version_ = 0;
  std::vector<SectionInfo> sections_;
};

}  // namespace persist
}  // namespace rabitq
