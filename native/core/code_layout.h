// Where the 1-bit codes of one cluster live (the index's CodePacker): one
// byte per 8 coordinates ("pair": two 4-bit FastScan sub-spaces), stored as
// full blocks of 32 vectors (32 bytes per pair, byte j = vector j), then the
// last r < 32 vectors compactly (r bytes per pair). The codes take exactly
// bytes_per_code() bytes per vector however small a cluster is, and a full
// block is what Kernels::fastscan reads.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/kernels.h"

namespace rabitq {

struct CodeLayout {
  size_t npairs = 0;  // bytes per code
  size_t words = 0;   // 64-bit words of an unpacked code

  static CodeLayout for_padded_dim(size_t padded_dim) { return CodeLayout{padded_dim / 8, padded_dim / 64}; }
  size_t bytes_per_code() const { return npairs; }

  // Offset of the block holding vector `local` of a cluster of `count`, and
  // its stride (bytes per pair: 32, or the tail's size).
  size_t block_offset(size_t count, size_t local, size_t* stride) const {
    const size_t full = count / kFastScanBlock;
    const size_t b = local / kFastScanBlock;
    *stride = b < full ? kFastScanBlock : count - full * kFastScanBlock;
    return b * npairs * kFastScanBlock;
  }
  void put(uint8_t* codes, size_t count, size_t local, const uint8_t* bytes) const {
    size_t stride;
    uint8_t* block = codes + block_offset(count, local, &stride);
    const size_t lane = local % kFastScanBlock;
    for (size_t p = 0; p < npairs; ++p) block[p * stride + lane] = bytes[p];
  }
  void get(const uint8_t* codes, size_t count, size_t local, uint8_t* bytes) const {
    size_t stride;
    const uint8_t* src = codes + block_offset(count, local, &stride) + local % kFastScanBlock;
    // A local bound: read through `this`, every byte stored (which may alias
    // anything) forced a reload of it.
    const size_t n = npairs;
    for (size_t p = 0; p < n; ++p) bytes[p] = src[p * stride];
  }
  // The code of one vector as `words` 64-bit words (bit i = coordinate i).
  void unpack_bits(const uint8_t* codes, size_t count, size_t local, uint64_t* bits) const {
    size_t stride;
    const uint8_t* block = codes + block_offset(count, local, &stride);
    const size_t lane = local % kFastScanBlock;
    std::memset(bits, 0, words * sizeof(uint64_t));
    for (size_t pair = 0; pair < npairs; ++pair) {
      const uint64_t byte = block[pair * stride + lane];
      bits[pair / 8] |= byte << ((pair % 8) * 8);
    }
  }
  // The full 32-vector block starting at `local` (a multiple of 32): in
  // place, or the tail spread into scratch (npairs * 32 bytes).
  const uint8_t* scan_block(const uint8_t* codes, size_t count, size_t local, uint8_t* scratch) const {
    size_t stride;
    const uint8_t* block = codes + block_offset(count, local, &stride);
    if (stride == kFastScanBlock) return block;
    // Whole 32-byte rows while they stay inside the tail (a fixed-size copy,
    // not a call per row): the bytes past a row's stride belong to the next
    // row and land in lanes the scan ignores.
    const size_t n = npairs, end = n * stride;
    size_t p = 0;
    for (; p < n && p * stride + kFastScanBlock <= end; ++p)
      std::memcpy(scratch + p * kFastScanBlock, block + p * stride, kFastScanBlock);
    for (; p < n; ++p) std::memcpy(scratch + p * kFastScanBlock, block + p * stride, stride);
    return scratch;
  }
  // Resizes a cluster's codes from old_count to new_count vectors, re-laying
  // the codes whose block changes shape (at most the last 32). New slots are
  // zero until written.
  void resize(std::vector<uint8_t>& codes, size_t old_count, size_t new_count) const {
    const size_t keep = std::min(old_count, new_count);
    const size_t start = keep / kFastScanBlock * kFastScanBlock;
    std::vector<uint8_t> moved((keep - start) * npairs);
    for (size_t i = start; i < keep; ++i) get(codes.data(), old_count, i, &moved[(i - start) * npairs]);
    codes.resize(new_count * npairs);
    std::fill(codes.begin() + static_cast<long>(start * npairs), codes.end(), 0);
    for (size_t i = start; i < keep; ++i) put(codes.data(), new_count, i, &moved[(i - start) * npairs]);
  }
};

}  // namespace rabitq
