// Picks the kernel table once from CPUID (x86-64) or the kernel's hardware
// capability bits (AArch64). RABITQ_SIMD=scalar|avx2|avx512|neon forces a
// level; asking for one the CPU lacks is an error at load time
// (thrown from the first active_kernels() call, which the binding makes
// during module init so the user sees a clear message, not SIGILL).
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#include "../common.h"
#include "kernels.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

namespace rabitq {

void avx512_vpopcnt_kernels(uint64_t (**popcount_and)(const uint64_t*, const uint64_t*, size_t),
                            uint64_t (**bitplane_ip)(const uint64_t*, size_t, const uint64_t*, size_t));
ExIpFn avx512_vnni_ex_ip();

bool neon_dotprod_kernels(uint64_t (**popcount_and)(const uint64_t*, const uint64_t*, size_t),
                          uint64_t (**bitplane_ip)(const uint64_t*, size_t, const uint64_t*, size_t));
ExIpFn neon_dotprod_ex_ip();

namespace {

// The AVX2 and AVX-512 kernel files are also compiled with -mf16c (the
// half-precision tiles). CPUID leaf 1 ECX bit 29, read directly because not
// every compiler's __builtin_cpu_supports knows "f16c". Read once: CPUID
// traps to the hypervisor in VMs (microseconds), and kernels_for() runs on
// every kernel call from the binding.
bool cpu_has_f16c() {
#if defined(__x86_64__)
  static const bool has = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
    return (ecx & (1u << 29)) != 0;
  }();
  return has;
#else
  return false;
#endif
}

bool cpu_has_avx2() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("popcnt") &&
         cpu_has_f16c();
#else
  return false;
#endif
}

bool cpu_has_avx512() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}

bool cpu_has_vpopcntdq() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512vpopcntdq");
#else
  return false;
#endif
}

bool cpu_has_vnni_512() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

const Kernels* avx512_table() {
  static const Kernels* table = []() -> const Kernels* {
    const Kernels* base = avx512_kernels();
    const Kernels* avx2 = avx2_kernels();
    if (base == nullptr || avx2 == nullptr) return nullptr;
    static Kernels k = *base;
    k.popcount_and = avx2->popcount_and;
    k.bitplane_ip = avx2->bitplane_ip;
    if (cpu_has_vpopcntdq()) avx512_vpopcnt_kernels(&k.popcount_and, &k.bitplane_ip);
    if (cpu_has_vnni_512() && avx512_vnni_ex_ip() != nullptr) k.ex_ip = avx512_vnni_ex_ip();
    return &k;
  }();
  return table;
}

// ---- AArch64 -------------------------------------------------------------
// Advanced SIMD is in every AArch64 CPU that Linux, macOS or Windows run on;
// on Linux the HWCAP bit is checked anyway. Optional extensions are read from
// AT_HWCAP once; elsewhere (macOS, Windows) only the base NEON table is used.
#if defined(__aarch64__) && defined(__linux__)
unsigned long arm_hwcap() {
  static const unsigned long caps = getauxval(AT_HWCAP);
  return caps;
}
constexpr unsigned long kHwcapAsimd = 1ul << 1;     // HWCAP_ASIMD
constexpr unsigned long kHwcapAsimdDp = 1ul << 20;  // HWCAP_ASIMDDP (dotprod)
#endif

bool cpu_has_neon() {
#if defined(__aarch64__) && defined(__linux__)
  return (arm_hwcap() & kHwcapAsimd) != 0;
#elif defined(__aarch64__) || defined(_M_ARM64)
  return true;
#else
  return false;
#endif
}

bool cpu_has_dotprod() {
#if defined(__aarch64__) && defined(__linux__)
  return (arm_hwcap() & kHwcapAsimdDp) != 0;
#else
  return false;
#endif
}

const Kernels* neon_table() {
  static const Kernels* table = []() -> const Kernels* {
    const Kernels* base = neon_kernels();
    if (base == nullptr || !cpu_has_neon()) return nullptr;
    static Kernels k = *base;
    if (cpu_has_dotprod()) {
      auto pop = k.popcount_and;
      auto bip = k.bitplane_ip;
      if (neon_dotprod_kernels(&pop, &bip)) {
        k.popcount_and = pop;
        k.bitplane_ip = bip;
      }
      if (neon_dotprod_ex_ip() != nullptr) k.ex_ip = neon_dotprod_ex_ip();
    }
    return &k;
  }();
  return table;
}

std::atomic<const Kernels*> g_active{nullptr};

const Kernels* choose_initial() {
  const char* env = std::getenv("RABITQ_SIMD");
  if (env != nullptr && *env != '\0') {
    SimdLevel wanted;
    if (!parse_level(env, &wanted)) {
      throw Error(ErrorKind::kRange,
                  std::string("RABITQ_SIMD must be one of scalar, avx2, avx512, neon; got '") + env + "'");
    }
    const Kernels* k = kernels_for(wanted);
    if (k == nullptr) {
      throw Error(ErrorKind::kRange, std::string("RABITQ_SIMD=") + env +
                                         " asks for a SIMD level this CPU does not support (best available: " +
                                         level_name(detected_level()) + ")");
    }
    return k;
  }
  return kernels_for(detected_level());
}

}  // namespace

bool cpu_has_avx512_vnni() { return cpu_has_avx512() && cpu_has_vnni_512() && avx512_vnni_ex_ip() != nullptr; }

size_t ex_ip_variants(const char** names, ExIpFn* fns, size_t max) {
  size_t n = 0;
  auto add = [&](const char* name, ExIpFn fn) {
    if (fn == nullptr) return;
    if (n < max) {
      names[n] = name;
      fns[n] = fn;
    }
    ++n;
  };
  add("scalar", scalar_kernels().ex_ip);
  if (cpu_has_avx2() && avx2_kernels() != nullptr) add("avx2", avx2_kernels()->ex_ip);
  if (cpu_has_avx512() && avx512_kernels() != nullptr) add("avx512", avx512_kernels()->ex_ip);
  if (cpu_has_avx512_vnni()) add("avx512vnni", avx512_vnni_ex_ip());
  if (neon_table() != nullptr) {
    add("neon", neon_kernels()->ex_ip);
    if (cpu_has_dotprod()) add("neondotprod", neon_dotprod_ex_ip());
  }
  return n;
}

const char* level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::kAvx512:
      return "avx512";
    case SimdLevel::kNeon:
      return "neon";
    case SimdLevel::kAvx2:
      return "avx2";
    default:
      return "scalar";
  }
}

bool parse_level(const char* name, SimdLevel* out) {
  if (std::strcmp(name, "scalar") == 0) {
    *out = SimdLevel::kScalar;
  } else if (std::strcmp(name, "avx2") == 0) {
    *out = SimdLevel::kAvx2;
  } else if (std::strcmp(name, "avx512") == 0) {
    *out = SimdLevel::kAvx512;
  } else if (std::strcmp(name, "neon") == 0) {
    *out = SimdLevel::kNeon;
  } else {
    return false;
  }
  return true;
}

SimdLevel detected_level() {
  if (neon_table() != nullptr) return SimdLevel::kNeon;
  if (cpu_has_avx512() && avx512_table() != nullptr) return SimdLevel::kAvx512;
  if (cpu_has_avx2() && avx2_kernels() != nullptr) return SimdLevel::kAvx2;
  return SimdLevel::kScalar;
}

const Kernels* kernels_for(SimdLevel level) {
  switch (level) {
    case SimdLevel::kScalar:
      return &scalar_kernels();
    case SimdLevel::kAvx2:
      return cpu_has_avx2() ? avx2_kernels() : nullptr;
    case SimdLevel::kAvx512:
      return cpu_has_avx512() ? avx512_table() : nullptr;
    case SimdLevel::kNeon:
      return neon_table();
  }
  return nullptr;
}

const Kernels& active_kernels() {
  const Kernels* k = g_active.load(std::memory_order_acquire);
  if (k == nullptr) {
    k = choose_initial();
    g_active.store(k, std::memory_order_release);
  }
  return *k;
}

SimdLevel active_level() { return active_kernels().level; }

void set_active_level(SimdLevel level) {
  const Kernels* k = kernels_for(level);
  RABITQ_THROW_IF_NOT(k != nullptr, kRange,
                      std::string("SIMD level '") + level_name(level) + "' is not supported by this CPU");
  g_active.store(k, std::memory_order_release);
}

}  // namespace rabitq
