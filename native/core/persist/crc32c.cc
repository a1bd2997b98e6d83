// CRC-32C, reflected polynomial 0x82F63B78.
//
// The scalar path is slicing-by-8: eight 256-entry tables let one step fold
// eight input bytes with independent lookups instead of a serial chain of
// eight, which is what makes table CRCs fast enough not to dominate a save.
//
// The SSE4.2 path uses the crc32 instruction. One instruction has a latency
// of 3 cycles but a throughput of 1 per cycle, so a single dependency chain
// leaves two thirds of the unit idle. Large inputs are therefore cut into
// chunks of three equal blocks whose CRCs run as three independent chains;
// the partial CRCs are merged with a precomputed linear map ("advance this
// CRC state over kBlock zero bytes"), which costs a few table lookups per
// chunk. Only the one function carries target("sse4.2"): the file is
// otherwise portable, so nothing compiled for SSE4.2 can be reached from
// code that runs before the CPUID check.
#include "crc32c.h"

#include <array>
#include <cstring>

#include "../kernels/kernels.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <nmmintrin.h>
#endif

namespace rabitq {
namespace persist {

namespace {

constexpr uint32_t kPoly = 0x82F63B78u;

using Tables = std::array<std::array<uint32_t, 256>, 8>;

constexpr Tables make_tables() {
  Tables t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ kPoly : (c >> 1);
    t[0][i] = c;
  }
  // t[k][i]: the state after byte i followed by k zero bytes.
  for (size_t k = 1; k < 8; ++k) {
    for (size_t i = 0; i < 256; ++i) {
      const uint32_t prev = t[k - 1][i];
      t[k][i] = (prev >> 8) ^ t[0][prev & 0xffu];
    }
  }
  return t;
}

constexpr Tables kTables = make_tables();

inline uint32_t load_le32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}

// CRC state update without the pre/post inversion.
uint32_t raw_scalar(uint32_t c, const uint8_t* p, size_t n) {
  const auto& t = kTables;
  while (n >= 8) {
    const uint32_t lo = load_le32(p) ^ c;
    const uint32_t hi = load_le32(p + 4);
    c = t[7][lo & 0xffu] ^ t[6][(lo >> 8) & 0xffu] ^ t[5][(lo >> 16) & 0xffu] ^ t[4][lo >> 24] ^ t[3][hi & 0xffu] ^
        t[2][(hi >> 8) & 0xffu] ^ t[1][(hi >> 16) & 0xffu] ^ t[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n > 0) {
    c = (c >> 8) ^ t[0][(c ^ *p) & 0xffu];
    ++p;
    --n;
  }
  return c;
}

#if defined(__x86_64__)

// Bytes per block of the three-way split (a multiple of 8).
constexpr size_t kBlock = 1024;

// Advancing a raw CRC state over a run of zero bytes is linear over GF(2), so
// it is a 32x32 bit matrix; split by input byte it becomes four 256-entry
// tables, the same trick as the slicing tables above.
struct ShiftTable {
  std::array<std::array<uint32_t, 256>, 4> t;
};

ShiftTable make_shift_table(size_t zero_bytes) {
  uint32_t column[32];
  for (int bit = 0; bit < 32; ++bit) {
    uint32_t c = 1u << bit;
    for (size_t i = 0; i < zero_bytes; ++i) c = (c >> 8) ^ kTables[0][c & 0xffu];
    column[bit] = c;
  }
  ShiftTable s{};
  for (int k = 0; k < 4; ++k) {
    for (uint32_t b = 0; b < 256; ++b) {
      uint32_t v = 0;
      for (int i = 0; i < 8; ++i) {
        if (b & (1u << i)) v ^= column[8 * k + i];
      }
      s.t[k][b] = v;
    }
  }
  return s;
}

const ShiftTable& block_shift() {
  static const ShiftTable table = make_shift_table(kBlock);
  return table;
}

inline uint32_t shift(const ShiftTable& s, uint32_t c) {
  return s.t[0][c & 0xffu] ^ s.t[1][(c >> 8) & 0xffu] ^ s.t[2][(c >> 16) & 0xffu] ^ s.t[3][c >> 24];
}

bool cpu_has_sse42() {
  static const bool has = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
    return (ecx & bit_SSE4_2) != 0;
  }();
  return has;
}

__attribute__((target("sse4.2"))) uint32_t raw_sse42(uint32_t state, const uint8_t* p, size_t n,
                                                     const ShiftTable* shifter) {
  uint64_t c = state;
  // Head: byte steps up to 8-byte alignment, so the wide loads below never
  // straddle a cache line more than necessary.
  while (n > 0 && (reinterpret_cast<uintptr_t>(p) & 7u) != 0) {
    c = _mm_crc32_u8(static_cast<uint32_t>(c), *p);
    ++p;
    --n;
  }
  if (shifter != nullptr) {
    while (n >= 3 * kBlock) {
      uint64_t a = c, b = 0, d = 0;
      for (size_t i = 0; i < kBlock; i += 8) {
        uint64_t wa, wb, wd;
        std::memcpy(&wa, p + i, 8);
        std::memcpy(&wb, p + kBlock + i, 8);
        std::memcpy(&wd, p + 2 * kBlock + i, 8);
        a = _mm_crc32_u64(a, wa);
        b = _mm_crc32_u64(b, wb);
        d = _mm_crc32_u64(d, wd);
      }
      // state(A B D) = shift(shift(a) ^ b) ^ d, where b and d started from 0.
      c = shift(*shifter, shift(*shifter, static_cast<uint32_t>(a)) ^ static_cast<uint32_t>(b)) ^
          static_cast<uint32_t>(d);
      p += 3 * kBlock;
      n -= 3 * kBlock;
    }
  }
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    c = _mm_crc32_u64(c, w);
    p += 8;
    n -= 8;
  }
  while (n > 0) {
    c = _mm_crc32_u8(static_cast<uint32_t>(c), *p);
    ++p;
    --n;
  }
  return static_cast<uint32_t>(c);
}

#endif  // __x86_64__

}  // namespace

uint32_t crc32c_scalar(uint32_t crc, const void* data, size_t n) {
  return ~raw_scalar(~crc, static_cast<const uint8_t*>(data), n);
}

bool crc32c_hw_available() {
#if defined(__x86_64__)
  return cpu_has_sse42();
#else
  return false;
#endif
}

uint32_t crc32c_hw(uint32_t crc, const void* data, size_t n) {
#if defined(__x86_64__)
  const ShiftTable* shifter = n >= 3 * kBlock ? &block_shift() : nullptr;
  return ~raw_sse42(~crc, static_cast<const uint8_t*>(data), n, shifter);
#else
  return crc32c_scalar(crc, data, n);
#endif
}

bool crc32c_uses_hw() { return crc32c_hw_available() && active_level() != SimdLevel::kScalar; }

uint32_t crc32c_update(uint32_t crc, const void* data, size_t n) {
  return crc32c_uses_hw() ? crc32c_hw(crc, data, n) : crc32c_scalar(crc, data, n);
}

}  // namespace persist
}  // namespace rabitq
