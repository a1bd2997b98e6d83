#include "ex_code.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>

#include "../common.h"
#include "../kernels/ex_layout.h"

namespace rabitq {

namespace {

// Bound calibration, measured by native/tests/test_ex_code.cc: the plain
// terms at epsilon = 1.9 cover the true inner product for >= 99% of pairs.
constexpr double kErrorCalibration = 1.4;
constexpr double kQuantCalibration = 1.0;

// Window of the exact search, in units of (2^ex_bits) / max|o_i|: the best
// scale was inside [0.45, 1.6] for every Gaussian and SIFT residual measured.
constexpr double kWindowLo = 0.3, kWindowHi = 2.0;

// splitmix64 + Box-Muller: the fitted constant must not depend on the
// standard library's distributions (saved codes are compared across builds).
struct Gauss {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
  double normal() { return std::sqrt(-2.0 * std::log(uniform())) * std::cos(6.283185307179586 * uniform()); }
};

struct Event {
  double t;
  uint32_t i;
  bool operator<(const Event& o) const { return t > o.t; }  // min-heap with std::push_heap
};

struct EncodeScratch {
  std::vector<double> a;
  std::vector<uint32_t> m;
  std::vector<uint8_t> ex;
  std::vector<Event> heap;
};

EncodeScratch& scratch(size_t pd) {
  thread_local EncodeScratch s;
  if (s.a.size() < pd) {
    s.a.resize(pd);
    s.m.resize(pd);
    s.ex.resize(pd);
  }
  return s;
}

// The scale t maximising <y, a> / ||y||, y_i = min(floor(t a_i), M) + 1/2,
// over the window; a: magnitudes (>= 0, max amax > 0). Visits every critical
// value k / a_i in the window in increasing order, updating the two sums by
// one coordinate each, and returns a t strictly inside the best interval.
double best_scale(const double* a, size_t pd, uint32_t M, double amax, std::vector<Event>& heap) {
  const double top = static_cast<double>(M) + 1.0;
  const double t_lo = kWindowLo * top / amax, t_hi = kWindowHi * top / amax;
  double ip = 0, xx = 0;
  heap.clear();
  for (size_t i = 0; i < pd; ++i) {
    const double v = std::floor(t_lo * a[i]);
    const uint32_t m = v >= M ? M : static_cast<uint32_t>(v);
    ip += (m + 0.5) * a[i];
    xx += (m + 0.5) * (m + 0.5);
    if (m < M && a[i] > 0) {
      const double t = (m + 1.0) / a[i];
      if (t <= t_hi) heap.push_back({t, static_cast<uint32_t>(i)});
    }
  }
  std::make_heap(heap.begin(), heap.end());
  double best = ip * ip / xx, best_t = t_lo;
  double prev_t = t_lo;
  bool best_open = true;  // best found at prev_t; its interval's end is the next event
  while (!heap.empty()) {
    const double t = heap.front().t;
    if (best_open) {
      best_t = 0.5 * (prev_t + t);
      best_open = false;
    }
    // Every coordinate changing at t, then one evaluation.
    while (!heap.empty() && heap.front().t == t) {
      std::pop_heap(heap.begin(), heap.end());
      const uint32_t i = heap.back().i;
      heap.pop_back();
      // Level of i before this event: t = (m + 1) / a_i.
      const double m_new = std::round(t * a[i]);
      ip += a[i];
      xx += 2.0 * m_new;  // (m + 1.5)^2 - (m + 0.5)^2 = 2 (m + 1)
      if (m_new < M) {
        const double nt = (m_new + 1.0) / a[i];
        if (nt <= t_hi) {
          heap.push_back({nt, i});
          std::push_heap(heap.begin(), heap.end());
        }
      }
    }
    const double f = ip * ip / xx;
    if (f > best) {
      best = f;
      best_open = true;
    }
    prev_t = t;
  }
  if (best_open) best_t = prev_t * (1.0 + 1e-9);
  return best_t;
}

// floor(x) for 0 <= x < 2^31. std::floor is a libm call on the baseline
// x86-64 target (no SSE4.1 roundsd), and it dominated multi-bit encoding;
// truncation is one instruction and equal to floor for non-negative x.
inline double floor_nonneg(double x) { return static_cast<double>(static_cast<int32_t>(x)); }

// <y, a>^2 / ||y||^2 at each of the scales t[0..n) (n <= kMaxScales), in one
// pass over a: the scales are the inner loop, so each has its own
// accumulators (independent chains the compiler vectorises) while every
// scale's sums still run over i in order, so each value is bit-identical to a
// separate pass.
constexpr int kMaxScales = 32;
void objectives(const double* a, size_t pd, uint32_t M, const double* t, int n, double* out) {
  double ip[kMaxScales] = {}, xx[kMaxScales] = {};
  const double top = static_cast<double>(M);
  for (size_t i = 0; i < pd; ++i) {
    const double ai = a[i];
    for (int k = 0; k < n; ++k) {
      const double m = std::min(floor_nonneg(t[k] * ai), top) + 0.5;
      ip[k] += m * ai;
      xx[k] += m * m;
    }
  }
  for (int k = 0; k < n; ++k) out[k] = ip[k] * ip[k] / xx[k];
}

// Coarse grid over the exact search's window, then a finer one around the
// best point. Scales are tried in the order t_const, coarse ascending, fine
// ascending; a later scale wins only when strictly better.
double searched_scale(const double* a, size_t pd, uint32_t M, double amax, double t_const) {
  const double top = static_cast<double>(M) + 1.0;
  const double lo = kWindowLo * top / amax, hi = kWindowHi * top / amax;
  constexpr int kCoarse = 24, kFine = 8;
  static_assert(kCoarse + 1 <= kMaxScales && kFine <= kMaxScales, "scale batch too small");
  double t[kMaxScales], f[kMaxScales];
  const double step = (hi - lo) / (kCoarse - 1);
  int n = 0;
  if (t_const > 0) t[n++] = t_const;
  for (int k = 0; k < kCoarse; ++k) t[n++] = lo + step * k;
  objectives(a, pd, M, t, n, f);
  double best_t = t_const, best = -1.0;
  for (int k = 0; k < n; ++k)
    if (f[k] > best) {
      best = f[k];
      best_t = t[k];
    }
  const double center = best_t, fine = step / kFine;
  n = 0;
  for (int k = -kFine / 2; k <= kFine / 2; ++k) {
    if (k == 0) continue;
    const double tk = center + fine * k;
    if (tk > 0) t[n++] = tk;
  }
  objectives(a, pd, M, t, n, f);
  for (int k = 0; k < n; ++k)
    if (f[k] > best) {
      best = f[k];
      best_t = t[k];
    }
  return best_t;
}

}  // namespace

ExEncoder::ExEncoder(size_t padded_dim, unsigned bits, ExRescale mode) : pd_(padded_dim), bits_(bits), mode_(mode) {
  RABITQ_THROW_IF_NOT(
      bits >= 2 && bits <= kMaxBits, kRange,
      "bits must be between 2 and " + std::to_string(kMaxBits) + " for extra-bit codes, got " + std::to_string(bits));
  RABITQ_THROW_IF_NOT(padded_dim >= 64 && padded_dim % 64 == 0, kRange, "padded_dim must be a multiple of 64");
  RABITQ_THROW_IF_NOT(mode == ExRescale::kExact || mode == ExRescale::kConstant || mode == ExRescale::kSearch, kRange,
                      "unknown rescale mode");
  // Fit the constant: mean best scale of unit Gaussian vectors. Fewer samples
  // for long vectors, whose best scale varies less.
  const uint32_t M = (1u << (bits - 1)) - 1;
  const size_t samples = std::max<size_t>(8, std::min<size_t>(64, (size_t(1) << 16) / pd_));
  Gauss g{0x5eed0000ULL + bits * 131 + pd_};
  std::vector<double> a(pd_);
  double sum_t = 0;
  for (size_t s = 0; s < samples; ++s) {
    double n2 = 0, amax = 0;
    for (size_t i = 0; i < pd_; ++i) {
      a[i] = g.normal();
      n2 += a[i] * a[i];
    }
    const double inv = 1.0 / std::sqrt(n2);
    for (size_t i = 0; i < pd_; ++i) {
      a[i] = std::fabs(a[i]) * inv;
      amax = std::max(amax, a[i]);
    }
    // The search lands within a fine step of the exact optimum (see the
    // tests) at a fraction of its cost, which matters for many levels.
    sum_t += searched_scale(a.data(), pd_, M, amax, 0.0);
  }
  const_t_ = static_cast<float>(sum_t / static_cast<double>(samples));
}

void ExEncoder::levels(const float* o, double norm, uint32_t* m, double* ip, double* xx) const {
  const uint32_t M = (1u << (bits_ - 1)) - 1;
  // A residual that overflowed float (a huge finite input, or a forged
  // rotation in a loaded file; found by native/fuzz) would reach the
  // float -> integer casts below as NaN or inf: undefined behaviour. It gets
  // the lowest levels and ip 0, hence zero factors (encode()).
  if (!std::isfinite(norm)) {
    for (size_t i = 0; i < pd_; ++i) m[i] = 0;
    *ip = 0;
    *xx = 0.25 * static_cast<double>(pd_);
    return;
  }
  EncodeScratch& s = scratch(pd_);
  double t;
  if (mode_ == ExRescale::kConstant) {
    t = norm > 0 ? const_t_ / norm : 0.0;
  } else {
    double amax = 0;
    for (size_t i = 0; i < pd_; ++i) {
      s.a[i] = std::fabs(static_cast<double>(o[i]));
      amax = std::max(amax, s.a[i]);
    }
    if (amax <= 0)
      t = 0.0;
    else if (mode_ == ExRescale::kExact)
      t = best_scale(s.a.data(), pd_, M, amax, s.heap);
    else
      t = searched_scale(s.a.data(), pd_, M, amax, norm > 0 ? const_t_ / norm : 0.0);
  }
  double sip = 0, sxx = 0;
  for (size_t i = 0; i < pd_; ++i) {
    const double ai = std::fabs(static_cast<double>(o[i]));
    const double v = floor_nonneg(t * ai);
    const uint32_t mi = v >= M ? M : static_cast<uint32_t>(v);
    m[i] = mi;
    sip += (mi + 0.5) * ai;
    sxx += (mi + 0.5) * (mi + 0.5);
  }
  *ip = sip;
  *xx = sxx;
}

void ExEncoder::encode(const float* o, uint8_t* ex, ExFactor* f, uint8_t* sign) const {
  const unsigned eb = bits_ - 1;
  const uint32_t M = (1u << eb) - 1;
  EncodeScratch& s = scratch(pd_);
  double norm2 = 0;
  for (size_t i = 0; i < pd_; ++i) norm2 += static_cast<double>(o[i]) * o[i];
  const double norm = std::sqrt(norm2);
  double ip, xx;
  levels(o, norm, s.m.data(), &ip, &xx);
  // ex_i = m_i for a positive coordinate, M - m_i for a negative one, so that
  // u_i - (2^bits - 1)/2 = +-(m_i + 1/2).
  for (size_t i = 0; i < pd_; ++i) s.ex[i] = static_cast<uint8_t>(o[i] > 0.f ? s.m[i] : M - s.m[i]);
  std::memset(ex, 0, code_bytes());
  const ex_layout::Sections sec = ex_layout::sections(pd_, eb);
  if (eb == 8) {
    std::memcpy(ex, s.ex.data(), pd_);
  } else {
    for (size_t g = 0; g < pd_ / 64; ++g) {
      const uint8_t* e = s.ex.data() + 64 * g;
      if (eb & 4u)
        for (size_t k = 0; k < 32; ++k)
          ex[sec.off4 + 32 * g + k] =
              static_cast<uint8_t>(((e[k] >> sec.shift4) & 15u) | (((e[k + 32] >> sec.shift4) & 15u) << 4));
      if (eb & 2u)
        for (size_t k = 0; k < 16; ++k) {
          unsigned b = 0;
          for (unsigned j = 0; j < 4; ++j) b |= ((e[16 * j + k] >> sec.shift2) & 3u) << (2 * j);
          ex[sec.off2 + 16 * g + k] = static_cast<uint8_t>(b);
        }
      if (eb & 1u)
        for (size_t k = 0; k < 8; ++k) {
          unsigned b = 0;
          for (unsigned t = 0; t < 8; ++t) b |= (e[8 * k + t] & 1u) << t;
          ex[sec.off1 + 8 * g + k] = static_cast<uint8_t>(b);
        }
    }
  }
  if (sign != nullptr)
    for (size_t p = 0; p < pd_ / 8; ++p) {
      unsigned b = 0;
      for (unsigned t = 0; t < 8; ++t) b |= (o[8 * p + t] > 0.f ? 1u : 0u) << t;
      sign[p] = static_cast<uint8_t>(b);
    }
  if (norm2 <= 0.0 || ip <= 0.0) {
    *f = ExFactor::make(0.f, 0.f, 0.f);
    return;
  }
  const double xnorm = std::sqrt(xx);
  const double a = std::min(1.0, ip / (xnorm * norm));
  const double ip_scale = -2.0 * norm2 / ip;
  *f = ExFactor::make(static_cast<float>(ip_scale),
                      static_cast<float>(kErrorCalibration * 2.0 * norm * std::sqrt((1.0 - a * a) / (a * a)) /
                                         std::sqrt(static_cast<double>(pd_) - 1.0)),
                      static_cast<float>(kQuantCalibration * std::fabs(ip_scale) * xnorm / std::sqrt(12.0)));
}

double ExEncoder::alignment(const float* o) const {
  std::vector<uint32_t> m(pd_);
  double norm2 = 0;
  for (size_t i = 0; i < pd_; ++i) norm2 += static_cast<double>(o[i]) * o[i];
  if (norm2 <= 0) return 0;
  double ip, xx;
  levels(o, std::sqrt(norm2), m.data(), &ip, &xx);
  return ip / (std::sqrt(xx) * std::sqrt(norm2));
}

void ExQuery::prepare(const float* qres, size_t padded_dim, unsigned b) {
  // Runs once per probed cluster that has a multi-bit candidate, so its
  // fixed cost counts (~6% of a 3-bit batch): a kernel (Kernels::ex_query).
  bits = b;
  if (q.size() != padded_dim) q.resize(padded_dim);
  float mx;
  double sum2;
  sum = active_kernels().ex_query(qres, padded_dim, q.data(), &mx, &sum2);
  qnorm2 = static_cast<float>(sum2);
  qnorm = static_cast<float>(std::sqrt(sum2));
  delta = mx / 127.f;
}

double ex_xbar_dot(const float* q, const uint8_t* sign, const uint8_t* ex, size_t padded_dim, unsigned bits) {
  const unsigned eb = bits - 1;
  const ex_layout::Sections sec = ex_layout::sections(padded_dim, eb);
  const double c = (static_cast<double>(1u << bits) - 1.0) / 2.0;
  double s = 0;
  for (size_t i = 0; i < padded_dim; ++i) {
    const unsigned u = (((sign[i / 8] >> (i % 8)) & 1u) << eb) + ex_layout::get(ex, sec, eb, i);
    s += static_cast<double>(q[i]) * (static_cast<double>(u) - c);
  }
  return s;
}

}  // namespace rabitq
