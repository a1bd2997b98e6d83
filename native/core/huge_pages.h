// Allocation of the index's big arrays on transparent huge pages.
//
// Re-ranking reads raw vectors at random across hundreds of MB; with 4 KiB
// pages nearly every one of those reads also misses the TLB. Arrays of
// 8 MiB or more are aligned to 2 MiB and advised as huge pages before they
// are first touched (madvise only: nothing changes where the kernel's THP
// mode is "never"). Measured on sift1m-cv: about 4% more QPS (A/B, 7 pairs).
#pragma once
#include <sys/mman.h>

#include <cstddef>
#include <cstdlib>
#include <new>
#include <vector>

namespace rabitq {

constexpr size_t kHugePageBytes = size_t{2} << 20;

// Allocates `bytes` (aligned to 64, or to 2 MiB and advised as huge pages
// when large); release with std::free.
inline void* allocate_maybe_huge(size_t bytes) {
  const size_t align = bytes >= 4 * kHugePageBytes ? kHugePageBytes : 64;
  const size_t rounded = (bytes + align - 1) / align * align;
  void* p = nullptr;
  if (rounded < bytes || ::posix_memalign(&p, align, rounded == 0 ? align : rounded) != 0) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
  if (align == kHugePageBytes) ::madvise(p, rounded, MADV_HUGEPAGE);  // advisory: failures are fine
#endif
  return p;
}

template <class T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) {}
  T* allocate(size_t n) {
    if (n > static_cast<size_t>(-1) / sizeof(T)) throw std::bad_alloc();
    return static_cast<T*>(allocate_maybe_huge(n * sizeof(T)));
  }
  void deallocate(T* p, size_t) { std::free(p); }
  template <class U>
  bool operator==(const HugePageAllocator<U>&) const {
    return true;
  }
  template <class U>
  bool operator!=(const HugePageAllocator<U>&) const {
    return false;
  }
};

template <class T>
using HugeVector = std::vector<T, HugePageAllocator<T>>;

}  // namespace rabitq
