// Validation order: the fields whose meaning every version shares (magic,
// version, byte order; bytes 0..15) come first, so that a file from a newer
// or foreign writer gets a message about that rather than about a checksum.
// Then the header checksum, before any other header field is believed; then
// the section table's geometry, before any section byte is touched; then the
// section CRCs.
#include "reader.h"

#include <cstring>

#include "../common.h"
#include "crc32c.h"

namespace rabitq {
namespace persist {

namespace {

uint32_t load_u32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

uint64_t load_u64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::string hex32(uint32_t v) {
  static const char* digits = "0123456789abcdef";
  std::string s = "0x";
  for (int i = 7; i >= 0; --i) s += digits[(v >> (4 * i)) & 0xfu];
  return s;
}

std::string hex_bytes(const uint8_t* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    if (i) s += ' ';
    s += digits[p[i] >> 4];
    s += digits[p[i] & 0xfu];
  }
  return s;
}

std::string num(uint64_t v) { return std::to_string(v); }

class Checker {
 public:
  explicit Checker(const std::string& name) : name_(name) {}
  [[noreturn]] void fail(const std::string& msg) const { throw Error(ErrorKind::kFormat, name_ + ": " + msg); }

 private:
  const std::string& name_;
};

}  // namespace

Container Container::parse(std::shared_ptr<Blob> blob, const std::string& name, const std::set<uint32_t>& lazy_tags) {
  const Checker c(name);
  if (!blob) c.fail("no data");
  const uint8_t* d = blob->data();
  const uint64_t size = blob->size();
  const size_t min_header = header_bytes(0);

  // ---- bytes 0..15: the same in every version --------------------------------
  if (size >= sizeof(kMagic) && std::memcmp(d, kMagic, sizeof(kMagic)) != 0) {
    c.fail("not a rabitq index: bad magic at byte offset 0 (found " + hex_bytes(d, sizeof(kMagic)) +
           ", expected \"RABITQIX\")");
  }
  if (size < 16) {
    c.fail("truncated: " + num(size) + " bytes, but a rabitq index header has at least " + num(min_header));
  }
  const uint32_t bom = load_u32(d + 12);
  if (bom != kByteOrderMark) {
    if (bom == 0x04030201u) {
      c.fail(
          "the file is big-endian (byte-order marker 01 02 03 04 at byte offset 12); this build reads "
          "little-endian files only");
    }
    c.fail("bad byte-order marker at byte offset 12 (found " + hex_bytes(d + 12, 4) + ", expected 04 03 02 01)");
  }
  const uint32_t version = load_u32(d + 8);
  if (version < kMinFormatVersion || version > kFormatVersion) {
    c.fail("the file has container format version " + num(version) +
           " (byte offset 8), but this build reads versions " + num(kMinFormatVersion) + ".." + num(kFormatVersion) +
           (version > kFormatVersion ? " only; it was written by a newer rabitq, upgrade to load it" : " only"));
  }

  // ---- the header, checked as a whole before any field is used ---------------
  if (size < min_header) {
    c.fail("truncated: " + num(size) + " bytes, but a rabitq index header has at least " + num(min_header));
  }
  const uint32_t header_len = load_u32(d + 16);
  const uint32_t count = load_u32(d + 20);
  if (count > kMaxSections) {
    c.fail("section count " + num(count) + " at byte offset 20 exceeds the maximum " + num(kMaxSections) +
           " (corrupt header)");
  }
  if (header_len != header_bytes(count)) {
    c.fail("header length " + num(header_len) + " at byte offset 16 does not match the section count " + num(count) +
           " (expected " + num(header_bytes(count)) + "; corrupt header)");
  }
  if (size < header_len) {
    c.fail("truncated: the header alone is " + num(header_len) + " bytes, but there are only " + num(size));
  }
  const size_t crc_at = header_len - kHeaderCrcBytes;
  const uint32_t stored_header_crc = load_u32(d + crc_at);
  const uint32_t header_crc = crc32c(d, crc_at);
  if (stored_header_crc != header_crc) {
    c.fail("header checksum mismatch (stored " + hex32(stored_header_crc) + " at byte offset " + num(crc_at) +
           ", computed " + hex32(header_crc) + " over bytes 0.." + num(crc_at) + "): the header is corrupt");
  }
  const uint64_t file_len = load_u64(d + 24);
  if (file_len > size) {
    c.fail("truncated: expected " + num(file_len) + " bytes (file length at byte offset 24), actual size " + num(size));
  }
  if (file_len < size) {
    c.fail(num(size - file_len) + " unexpected bytes after the end of the index: expected " + num(file_len) +
           " bytes (file length at byte offset 24), actual size " + num(size));
  }

  // ---- section table geometry; every byte not in a section must be zero ------
  auto require_zero = [&](uint64_t from, uint64_t to, const std::string& where) {
    for (uint64_t i = from; i < to; ++i) {
      if (d[i] != 0) {
        c.fail("nonzero padding byte " + hex_bytes(d + i, 1) + " at byte offset " + num(i) + " (" + where +
               "; padding must be zero)");
      }
    }
  };
  Container out;
  out.sections_.reserve(count);
  uint64_t prev_end = header_len;
  std::string prev_what = "the header";
  for (uint32_t i = 0; i < count; ++i) {
    const size_t at = kFixedHeaderBytes + size_t{i} * kSectionEntryBytes;
    const uint8_t* e = d + at;
    SectionInfo s;
    s.tag = load_u32(e);
    s.offset = load_u64(e + 8);
    s.length = load_u64(e + 16);
    s.crc = load_u32(e + 24);
    s.lazy = lazy_tags.count(s.tag) != 0;
    const std::string what =
        "section " + num(i) + " " + tag_name(s.tag) + " (table entry at byte offset " + num(at) + ")";
    if (load_u32(e + 4) != 0 || load_u32(e + 28) != 0) c.fail(what + ": reserved fields are not zero");
    for (const SectionInfo& o : out.sections_) {
      if (o.tag == s.tag) c.fail(what + ": the tag appears twice");
    }
    if (s.offset % kSectionAlign != 0) {
      c.fail(what + ": offset " + num(s.offset) + " is not a multiple of " + num(kSectionAlign));
    }
    if (s.offset > file_len || s.length > file_len - s.offset) {
      c.fail(what + ": bytes " + num(s.offset) + ".." + num(s.offset) + "+" + num(s.length) +
             " extend past the end of the file (" + num(file_len) + " bytes)");
    }
    if (s.offset < prev_end) {
      c.fail(what + ": offset " + num(s.offset) + " overlaps " + prev_what + " (which ends at byte offset " +
             num(prev_end) + "); sections must be sorted by offset and disjoint");
    }
    require_zero(prev_end, s.offset, "between " + prev_what + " and section " + tag_name(s.tag));
    prev_end = s.offset + s.length;
    prev_what = "section " + tag_name(s.tag);
    out.sections_.push_back(s);
  }
  require_zero(prev_end, file_len, "after " + prev_what);

  out.blob_ = std::move(blob);
  out.name_ = name;
  out.version_ = version;
  for (const SectionInfo& s : out.sections_) {
    if (!s.lazy) out.check_crc(s);
  }
  return out;
}

const SectionInfo* Container::find(uint32_t tag) const {
  for (const SectionInfo& s : sections_) {
    if (s.tag == tag) return &s;
  }
  return nullptr;
}

void Container::check_crc(const SectionInfo& s) const {
  const uint32_t actual = crc32c(blob_->data() + s.offset, static_cast<size_t>(s.length));
  if (actual != s.crc) {
    throw Error(ErrorKind::kFormat, name_ + ": section " + tag_name(s.tag) + " (bytes " + num(s.offset) + ".." +
                                        num(s.offset + s.length) + ") is corrupt: its CRC-32C is " + hex32(actual) +
                                        ", the header says " + hex32(s.crc));
  }
}

SectionView Container::section(uint32_t tag) const {
  const SectionInfo* s = find(tag);
  if (s == nullptr) throw Error(ErrorKind::kFormat, name_ + ": missing section " + tag_name(tag));
  return SectionView{blob_->data() + s->offset, static_cast<size_t>(s->length)};
}

void Container::verify_section(uint32_t tag) const {
  const SectionInfo* s = find(tag);
  if (s == nullptr) throw Error(ErrorKind::kFormat, name_ + ": missing section " + tag_name(tag));
  check_crc(*s);
}

void Container::verify_all() const {
  for (const SectionInfo& s : sections_) check_crc(s);
}

}  // namespace persist
}  // namespace rabitq
