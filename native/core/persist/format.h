// Constants of the container format shared by the writer and the reader.
// docs/FORMAT.md ("Container") is the normative description; a change here
// that alters any byte on disk needs a new kFormatVersion.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

// Sections hold raw arrays (floats, u32, u64) copied straight from memory and
// handed back as pointers into a mapped file, which is only correct when the
// host byte order is the file's.
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "rabitq's index format is little-endian and is read in place; big-endian hosts are not supported"
#endif

namespace rabitq {
namespace persist {

// A section tag: four ASCII characters, stored so that a hex dump of the
// file shows them in reading order (the first character is the lowest byte
// of the little-endian u32).
constexpr uint32_t fourcc(const char (&s)[5]) {
  return static_cast<uint32_t>(static_cast<uint8_t>(s[0])) | (static_cast<uint32_t>(static_cast<uint8_t>(s[1])) << 8) |
         (static_cast<uint32_t>(static_cast<uint8_t>(s[2])) << 16) |
         (static_cast<uint32_t>(static_cast<uint8_t>(s[3])) << 24);
}

// 'META' for printable tags, 0x1234abcd otherwise (for error messages).
inline std::string tag_name(uint32_t tag) {
  char c[4];
  bool printable = true;
  for (int i = 0; i < 4; ++i) {
    c[i] = static_cast<char>((tag >> (8 * i)) & 0xffu);
    printable = printable && c[i] >= 0x20 && c[i] < 0x7f && c[i] != '\'';
  }
  if (printable) return "'" + std::string(c, 4) + "'";
  static const char* hex = "0123456789abcdef";
  std::string s = "0x";
  for (int i = 7; i >= 0; --i) s += hex[(tag >> (4 * i)) & 0xfu];
  return s;
}

constexpr char kMagic[8] = {'R', 'A', 'B', 'I', 'T', 'Q', 'I', 'X'};
// 2: multi-bit codes (META's bits, sections EXCD / EXFT).
// 3: EXFT rows of 8 bytes (the bound terms in bfloat16), not 12.
// The reader also reads every version from kMinFormatVersion on.
constexpr uint32_t kFormatVersion = 3;
constexpr uint32_t kMinFormatVersion = 1;
// Written as a little-endian u32, i.e. bytes 04 03 02 01. A reader that sees
// 01 02 03 04 is looking at a big-endian file.
constexpr uint32_t kByteOrderMark = 0x01020304u;

// Every section starts at a multiple of this file offset: a mapped file is
// page-aligned, so the arrays inside are cache-line (and AVX-512) aligned.
constexpr size_t kSectionAlign = 64;

// Header: magic(8) version(4) bom(4) header_len(4) count(4) file_len(8).
constexpr size_t kFixedHeaderBytes = 32;
// Per section: tag(4) reserved(4) offset(8) length(8) crc32c(4) reserved(4).
constexpr size_t kSectionEntryBytes = 32;
// The header ends with the CRC-32C of all header bytes before it.
constexpr size_t kHeaderCrcBytes = 4;

// Upper bound accepted by the reader; it keeps a corrupted count from asking
// for an absurd header before the checksum has been verified.
constexpr uint32_t kMaxSections = 1024;

constexpr size_t header_bytes(size_t sections) {
  return kFixedHeaderBytes + sections * kSectionEntryBytes + kHeaderCrcBytes;
}

constexpr uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace persist
}  // namespace rabitq
