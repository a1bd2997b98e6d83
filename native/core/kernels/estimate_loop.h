// The RaBitQ estimate of one FastScan block, written once and compiled in
// each ISA's file with that file's target flags: the compiler vectorizes it
// for SSE2, AVX2 or AVX-512 (the factors are read as 4-float records, which
// it de-interleaves). -ffp-contract=off keeps every level's results
// bit-identical to the scalar one: same operations, same order, no fused
// multiply-adds. C++ only, no library headers (see kernels.h).
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels.h"  // EstimateParams

namespace rabitq {
namespace kernels_detail {

inline void estimate_loop(const float* __restrict factors, const uint16_t* __restrict ip, size_t n,
                          const EstimateParams& p, float* __restrict est, float* __restrict lower) {
  const float qnorm2 = p.qnorm2, two_lo = p.two_lo, two_delta = p.two_delta, sumq = p.sumq;
  const float err_mul = p.err_mul, quant_mul = p.quant_mul;
  for (size_t j = 0; j < n; ++j) {
    const float r = factors[4 * j], s = factors[4 * j + 1], pop = factors[4 * j + 2], e = factors[4 * j + 3];
    const float v = r + qnorm2 + s * (two_lo * pop + two_delta * static_cast<float>(ip[j]) - sumq);
    est[j] = v;
    lower[j] = with_roundoff(v - err_mul * e + quant_mul * s, v, qnorm2);
  }
}

// Bit j set when lower[j] <= threshold: the portable form (the x86 levels
// compare in registers instead).
inline uint32_t below_mask_loop(const float* lower, size_t n, float threshold) {
  uint32_t mask = 0;
  for (size_t j = 0; j < n; ++j) mask |= static_cast<uint32_t>(lower[j] <= threshold) << j;
  return mask;
}

// Kernels::scan_blocks from one level's fastscan and estimate, which the
// compiler inlines into the loop (same translation unit).
template <void (*Fastscan)(const uint8_t*, const uint8_t*, size_t, uint16_t*),
          uint32_t (*Estimate)(const float*, const uint16_t*, size_t, const EstimateParams&, float, float*, float*)>
void scan_blocks_loop(const uint8_t* codes, const uint8_t* luts, size_t npairs, const float* factors, size_t nblocks,
                      const EstimateParams& p, float threshold, float* est, float* lower, uint32_t* masks) {
  alignas(64) uint16_t ip[32];
  for (size_t b = 0; b < nblocks; ++b) {
    Fastscan(codes + b * npairs * 32, luts, npairs, ip);
    masks[b] = Estimate(factors + b * 32 * 4, ip, 32, p, threshold, est + b * 32, lower + b * 32);
  }
}

// Kernels::indices_below without branches on the data: every position is
// written, the count advances only past the ones that pass. (static: each
// level's file keeps its own copy, compiled with its own flags.)
static inline size_t indices_below_loop(const float* x, size_t n, float t, uint32_t* out) {
  size_t c = 0;
  for (size_t i = 0; i < n; ++i) {
    out[c] = static_cast<uint32_t>(i);
    c += static_cast<size_t>(x[i] <= t);
  }
  return c;
}

}  // namespace kernels_detail
}  // namespace rabitq
