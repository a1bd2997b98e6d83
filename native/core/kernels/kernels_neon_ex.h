// Shared by the two NEON kernel files: whether the dotprod versions are
// compiled, and the multi-bit inner product that kernels_neon_ex.cc provides
// to the NEON table of kernels_neon.cc.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__aarch64__) && defined(__ARM_NEON) && defined(__linux__) && (!defined(__clang__) || __clang_major__ >= 16)
#define RABITQ_NEON_DOTPROD 1
#endif

namespace rabitq::neon_detail {
int64_t ex_ip(const int8_t* q, const uint8_t* sign, const uint8_t* ex, size_t pd, unsigned ex_bits);
}  // namespace rabitq::neon_detail
