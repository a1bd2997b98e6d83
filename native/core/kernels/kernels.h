// Table of SIMD kernels. One scalar reference (kernels_scalar.cc) and one
// table per ISA with identical signatures; dispatch.cc picks one at load from
// CPUID, and RABITQ_SIMD can force a lower level. The ISA files include only
// <immintrin.h> and C headers so that no inline STL code compiled with AVX
// flags can leak into the portable paths through the linker.
#pragma once
#include <cstddef>
#include <cstdint>

namespace rabitq {

// x86-64 levels are ordered (each includes the one below); kNeon is the
// AArch64 level, next to scalar only.
enum class SimdLevel : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2, kNeon = 3 };

// Number of vectors in one FastScan block.
constexpr size_t kFastScanBlock = 32;

// The RaBitQ lower bound covers the estimator's error, not the rounding of
// the float arithmetic that computes it: about 2^-24 of the magnitudes
// involved per operation, of which the query residual's squared norm is the
// largest. When the query is far from the data (a query of 1e7 against
// vectors in [-0.5, 0.5]) that rounding exceeds the bound itself, every
// lower bound lands on its own estimate and on the k-th upper bound, and the
// scan's strict comparisons kept no candidate at all: ids -1, distance
// Infinity. 2^-20 of (|estimate| + ||q_r||^2) covers the few roundings; next
// to the usual bounds (percents of the distance) it costs nothing.
constexpr float kEstimateRoundoff = 1.f / (1 << 20);
// A bound with that margin taken off: the 1-bit bound in Kernels::estimate
// and the multi-bit one in the scan, the same operations in the same order.
inline float with_roundoff(float lower, float est, float qnorm2) {
  return lower - kEstimateRoundoff * (__builtin_fabsf(est) + qnorm2);
}

// Per-(query, cluster) terms of the RaBitQ estimator (see quantizer.h).
struct EstimateParams {
  float qnorm2;     // ||q_r||^2, the query residual's squared norm
  float two_lo;     // 2 * lowest value of the quantized query
  float two_delta;  // 2 * quantization step
  float sumq;       // sum of the query residual's coordinates
  float err_mul;    // epsilon * ||q_r||: scales each vector's error bound
  float quant_mul;  // epsilon * delta * sqrt(D/2): the query-quantization term
};

struct Kernels {
  SimdLevel level;
  const char* name;

  // Squared Euclidean distance.
  float (*l2sq)(const float* a, const float* b, size_t d);
  // Inner product.
  float (*dot)(const float* a, const float* b, size_t d);
  // Min and max of x[0..d).
  void (*minmax)(const float* x, size_t d, float* lo, float* hi);
  // out[i] = min(maxval, floor((x[i] - lo) * inv_delta + offsets[i])), with
  // offsets in [0,1) giving randomized (unbiased) rounding. Returns sum(out).
  uint32_t (*quantize)(const float* x, size_t d, float lo, float inv_delta, const float* offsets, uint32_t maxval,
                       uint8_t* out);
  // popcount(a & b) over `words` 64-bit words.
  uint64_t (*popcount_and)(const uint64_t* a, const uint64_t* b, size_t words);
  // sum_b 2^b * popcount(plane_b & code): the inner product of a B-bit query
  // stored as bit planes (plane b at planes + b*words) with a 1-bit code.
  uint64_t (*bitplane_ip)(const uint64_t* planes, size_t bits, const uint64_t* code, size_t words);
  // FastScan: for one block of 32 codes packed as `npairs` groups of 32 bytes
  // (byte j = nibble of vector j for sub-space 2p in the low half, 2p+1 in the
  // high half) and LUTs of 32 bytes per pair (16 entries for 2p, 16 for 2p+1),
  // out[j] = sum over sub-spaces of lut[nibble]. Entries must keep the total
  // below 65536.
  void (*fastscan)(const uint8_t* codes, const uint8_t* luts, size_t npairs, uint16_t* out);
  // out[p*16 + j] = dot(xs + p*dim, column j of ct) for p < np, where ct holds
  // 16 vectors transposed (ct[t*16 + j] = vector j, coordinate t). The
  // building block of the blocked point-to-centroid distance computations.
  void (*dot_tile16)(const float* xs, size_t np, size_t dim, const float* ct, float* out);
  // The same with the 16 vectors stored as IEEE half floats: halves the
  // bytes streamed by the memory-bound single-query centroid scan. A point's
  // values do not depend on np (at one level): search() and searchBatch()
  // rank the centroids identically.
  void (*dot_tile16_f16)(const float* xs, size_t np, size_t dim, const uint16_t* ct, float* out);
  // RaBitQ estimates of n <= 32 vectors from their factors (4 floats each:
  // residual norm^2, ip scale, popcount, error scale) and FastScan sums ip:
  // est = f0 + qnorm2 + f1 * (two_lo * f2 + two_delta * ip - sumq),
  // lower = est - err_mul * f3 + quant_mul * f1
  //         - kEstimateRoundoff * (|est| + qnorm2)   (the float roundings).
  // Returns the mask of the vectors the scan must look at: bit j set when
  // lower[j] <= threshold (never for a NaN). The scan keeps few of the codes
  // it estimates, so a mask in the kernel saves it a scalar test per code.
  // Bit-identical at every level.
  uint32_t (*estimate)(const float* factors, const uint16_t* ip, size_t n, const EstimateParams& p, float threshold,
                       float* est, float* lower);
  // Multi-bit RaBitQ: sum_i q[i] * ((sign_i << ex_bits) + ex_i), the inner
  // product of an 8-bit signed query with one vector's full (ex_bits + 1)-bit
  // code u_i in [0, 2^(ex_bits+1)). sign: padded_dim / 8 bytes (bit t of byte
  // p = dimension 8p + t, the 1-bit code); ex: the packed extra bits, layout in
  // quantizer/ex_code.h. padded_dim is a multiple of 64, ex_bits in 1..8, q in
  // [-127, 127]. Exact integer arithmetic: bit-identical at every level.
  int64_t (*ex_ip)(const int8_t* q, const uint8_t* sign, const uint8_t* ex, size_t padded_dim, unsigned ex_bits);
  // FastScan LUTs of a quantized query qu (npairs * 8 values, each <= 15):
  // for sub-space m (coordinates 4m..4m+3), entry v of
  // luts[(m / 2) * 32 + (m % 2) * 16 ..] = sum of qu[4m + b] over the set
  // bits b of v. Integer: bit-identical at every level.
  void (*fastscan_luts)(const uint8_t* qu, size_t npairs, uint8_t* luts);
  // fastscan then estimate over nblocks consecutive full blocks of a
  // cluster (codes: npairs * 32 bytes per block; factors: 32 records per
  // block; est / lower: 32 floats per block; masks[b]: block b's mask at
  // `threshold`). The same values as the two kernels block by block; one
  // call per cluster keeps the ip sums in registers, sets the constants up
  // once and lets the blocks' dependency chains overlap.
  void (*scan_blocks)(const uint8_t* codes, const uint8_t* luts, size_t npairs, const float* factors, size_t nblocks,
                      const EstimateParams& p, float threshold, float* est, float* lower, uint32_t* masks);
  // The positions i of x[0..n) with x[i] <= t (never a NaN), ascending, into
  // out, which has room for n + 16 (the SIMD levels store whole vectors);
  // returns how many. The filter of the probe selection: ~3 per 100 of the
  // centroid distances pass, and a branch per value was most of its cost.
  size_t (*indices_below)(const float* x, size_t n, float t, uint32_t* out);
  // The 8-bit query of the multi-bit estimate, from the query residual qres
  // (padded_dim, a multiple of 64): q[i] = qres[i] * 127 / max|qres| rounded
  // half away from zero, in [-127, 127] (all 0 when qres is 0); *max_abs =
  // max |qres[i]|; *norm2 = sum of qres[i]^2 in double, as sixteen chains
  // (i mod 16) added pairwise (j + 8, then j + 4, ...). Returns sum q[i].
  // Bit-identical at every level.
  int32_t (*ex_query)(const float* qres, size_t padded_dim, int8_t* q, float* max_abs, double* norm2);
};

// Signature of Kernels::ex_ip.
using ExIpFn = int64_t (*)(const int8_t*, const uint8_t*, const uint8_t*, size_t, unsigned);

// IEEE 754 binary16 conversions (round to nearest even), portable.
uint16_t float_to_half(float f);
float half_to_float(uint16_t h);

const Kernels& scalar_kernels();
// nullptr when the ISA was not compiled in.
const Kernels* avx2_kernels();
const Kernels* avx512_kernels();
// AArch64 NEON (kernels_neon.cc): the base table, without optional extensions.
const Kernels* neon_kernels();

// The kernels in use (chosen once; see dispatch.cc).
const Kernels& active_kernels();
SimdLevel active_level();
const char* level_name(SimdLevel level);
// Best level this CPU supports.
SimdLevel detected_level();
// Kernels for a level, or nullptr if the CPU does not support it.
const Kernels* kernels_for(SimdLevel level);
// Switch the active level (tests). Throws if the CPU lacks it.
void set_active_level(SimdLevel level);
bool parse_level(const char* name, SimdLevel* out);
// Whether the CPU has AVX-512 VNNI (vpdpbusd). The avx512 table then uses a
// VNNI ex_ip; it is a feature of that level, not a level of its own.
bool cpu_has_avx512_vnni();
// Every ex_ip implementation this CPU can run, for tests and benchmarks:
// scalar, avx2, avx512 (without VNNI), avx512vnni; on AArch64 scalar, neon
// (the base table) and neondotprod (SDOT, which the neon level then uses).
// Fills up to max entries and returns how many exist.
size_t ex_ip_variants(const char** names, ExIpFn* fns, size_t max);

}  // namespace rabitq
