// CRC-32C (Castagnoli), the checksum of every section of a saved index.
//
// Why CRC-32C and not a cryptographic hash: the threat is torn writes, bit
// rot and truncation, not an adversary, and x86-64 computes CRC-32C in
// hardware (SSE4.2) at several GB/s, so verifying a large mapped index costs
// about as much as paging it in. The scalar fallback keeps the format
// readable on any CPU, and both paths produce identical values by definition.
//
// The API follows the usual "update" convention (pre- and post-inversion
// inside the call), so calls chain over pieces of a stream:
//   crc32c_update(crc32c_update(0, a, na), b, nb) == crc32c_update(0, ab, na + nb)
// and crc32c_update(0, "123456789", 9) == 0xE3069283.
#pragma once
#include <cstddef>
#include <cstdint>

namespace rabitq {
namespace persist {

// Dispatches to the hardware path when the CPU has SSE4.2 and the active SIMD
// level (RABITQ_SIMD / set_active_level) is not "scalar". Following the
// kernel level, rather than a knob of its own, means one switch forces every
// portable path, which is how the test runs cover both implementations.
// Like active_kernels(), the first call throws if RABITQ_SIMD is invalid
// (the binding reports that at module load, before any save or load).
uint32_t crc32c_update(uint32_t crc, const void* data, size_t n);

inline uint32_t crc32c(const void* data, size_t n) { return crc32c_update(0, data, n); }

// The portable table-driven implementation (slicing-by-8).
uint32_t crc32c_scalar(uint32_t crc, const void* data, size_t n);

// The SSE4.2 implementation. Only call it when crc32c_hw_available(); on
// builds for other architectures it is the scalar code.
uint32_t crc32c_hw(uint32_t crc, const void* data, size_t n);
bool crc32c_hw_available();

// Whether crc32c_update() currently takes the hardware path (tests).
bool crc32c_uses_hw();

}  // namespace persist
}  // namespace rabitq
