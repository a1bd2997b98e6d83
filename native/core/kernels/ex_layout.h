// Layout of the packed extra bits of a multi-bit RaBitQ code (see
// quantizer/ex_code.h for the whole scheme). Shared by the encoder and the
// scalar kernel so both read one definition. C++ only, no library headers
// (kernels.h rule).
//
// A vector's ex code holds ex_bits (1..8) bits per dimension, split into
// sections by bit width, each covering all padded_dim dimensions, in this
// order and only when present:
//   8-bit  (ex_bits == 8)   padded_dim bytes, byte i = dimension i
//   4-bit  (ex_bits & 4)    padded_dim / 2 bytes; per group of 64 dimensions,
//                           32 bytes: byte k holds dimension k in its low
//                           nibble and dimension 32 + k in its high nibble
//   2-bit  (ex_bits & 2)    padded_dim / 4 bytes; per group of 64, 16 bytes:
//                           byte k holds dimension 16j + k in bits 2j, 2j+1
//   1-bit  (ex_bits & 1)    padded_dim / 8 bytes; bit t of byte p = dimension
//                           8p + t (the same order as the sign bits)
// The value is ex = (c4 << (ex_bits & 3)) | (c2 << (ex_bits & 1)) | c1 (or c8
// alone): wider sections hold the higher bits. One vector takes exactly
// padded_dim * ex_bits / 8 bytes. Every section decodes 64 dimensions from a
// whole number of bytes with a few shifts and masks, which is what the SIMD
// kernels do.
#pragma once
#include <cstddef>
#include <cstdint>

namespace rabitq {
namespace ex_layout {

struct Sections {
  size_t off8, off4, off2, off1;  // byte offsets; meaningful only when present
  unsigned shift4, shift2;        // left shifts of the 4- and 2-bit values
};

inline Sections sections(size_t padded_dim, unsigned ex_bits) {
  Sections s{0, 0, 0, 0, ex_bits & 3u, ex_bits & 1u};
  size_t off = 0;
  if (ex_bits == 8) off += padded_dim;
  s.off4 = off;
  if (ex_bits & 4u) off += padded_dim / 2;
  s.off2 = off;
  if (ex_bits & 2u) off += padded_dim / 4;
  s.off1 = off;
  return s;
}

// ex value of dimension i.
inline unsigned get(const uint8_t* ex, const Sections& s, unsigned ex_bits, size_t i) {
  if (ex_bits == 8) return ex[i];
  const size_t g = i / 64, k = i % 64;
  unsigned v = 0;
  if (ex_bits & 4u) {
    const uint8_t b = ex[s.off4 + 32 * g + (k % 32)];
    v |= static_cast<unsigned>(k < 32 ? (b & 15u) : (b >> 4)) << s.shift4;
  }
  if (ex_bits & 2u) {
    const uint8_t b = ex[s.off2 + 16 * g + (k % 16)];
    v |= ((b >> (2 * (k / 16))) & 3u) << s.shift2;
  }
  if (ex_bits & 1u) v |= (ex[s.off1 + i / 8] >> (i % 8)) & 1u;
  return v;
}

// Stores ex value v (< 2^ex_bits) of dimension i; the code must start zeroed.
inline void put(uint8_t* ex, const Sections& s, unsigned ex_bits, size_t i, unsigned v) {
  if (ex_bits == 8) {
    ex[i] = static_cast<uint8_t>(v);
    return;
  }
  const size_t g = i / 64, k = i % 64;
  if (ex_bits & 4u) {
    const unsigned n = (v >> s.shift4) & 15u;
    ex[s.off4 + 32 * g + (k % 32)] |= static_cast<uint8_t>(k < 32 ? n : n << 4);
  }
  if (ex_bits & 2u) {
    const unsigned c = (v >> s.shift2) & 3u;
    ex[s.off2 + 16 * g + (k % 16)] |= static_cast<uint8_t>(c << (2 * (k / 16)));
  }
  if (ex_bits & 1u) ex[s.off1 + i / 8] |= static_cast<uint8_t>((v & 1u) << (i % 8));
}

}  // namespace ex_layout
}  // namespace rabitq
