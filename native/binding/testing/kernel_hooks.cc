// rabitq_testing.node: the SIMD kernels, callable one by one at a given
// level, for test/kernels*.test.ts and the kernel benchmark (bench/kernels.ts,
// loaded through bench/native_testing.ts). A separate, test-only addon: the
// library never loads it and prebuilds do not carry it (binding.gyp builds it
// into build/<config>/testing/, where neither node-gyp-build nor prebuildify
// look).
//
// Every array is checked for its type and length like in the library addon.
#include <napi.h>

#include <string>

#include "../../core/kernels/kernels.h"
#include "../args.h"

namespace rabitq::binding {
namespace {

const Kernels& kernels_arg(const Napi::CallbackInfo& info, size_t i) {
  Napi::Env env = info.Env();
  const std::string name = string_arg(env, info[i], "level");
  SimdLevel level;
  if (!parse_level(name.c_str(), &level)) throw_range_error(env, "unknown SIMD level " + name);
  const Kernels* k = kernels_for(level);
  if (k == nullptr) throw_range_error(env, "SIMD level " + name + " is not supported by this CPU");
  return *k;
}

Napi::Number number(Napi::Env env, double v) { return Napi::Number::New(env, v); }

// (level, a, b) -> number; b at least as long as a.
Napi::Value L2sq(const Napi::CallbackInfo& info) {
  const auto& k = kernels_arg(info, 0);
  Napi::Env env = info.Env();
  const auto a = array_arg<float>(env, info[1], "a");
  const auto b = array_arg<float>(env, info[2], "b", a.size);
  return number(env, k.l2sq(a.data, b.data, a.size));
}
Napi::Value Dot(const Napi::CallbackInfo& info) {
  const auto& k = kernels_arg(info, 0);
  Napi::Env env = info.Env();
  const auto a = array_arg<float>(env, info[1], "a");
  const auto b = array_arg<float>(env, info[2], "b", a.size);
  return number(env, k.dot(a.data, b.data, a.size));
}
// (level, x) -> [lo, hi]
Napi::Value Minmax(const Napi::CallbackInfo& info) {
  const auto& k = kernels_arg(info, 0);
  Napi::Env env = info.Env();
  const auto x = array_arg<float>(env, info[1], "x", 1);
  float lo, hi;
  k.minmax(x.data, x.size, &lo, &hi);
  auto arr = Napi::Array::New(env, 2);
  arr.Set(0u, number(env, lo));
  arr.Set(1u, number(env, hi));
  return arr;
}
// (level, x, lo, invDelta, offsets, maxval, out) -> sum
Napi::Value Quantize(const Napi::CallbackInfo& info) {
  const auto& k = kernels_arg(info, 0);
  Napi::Env env = info.Env();
  const auto x = array_arg<float>(env, info[1], "x");
  const float lo = static_cast<float>(number_arg(env, info[2], "lo"));
  const float inv_delta = static_cast<float>(number_arg(env, info[3], "invDelta"));
  const auto offsets = array_arg<float>(env, info[4], "offsets", x.size);
  const uint32_t maxval = uint32_arg(env, info[5], "maxval");
  const auto out = array_arg<uint8_t>(env, info[6], "out", x.size);
  return number(env, k.quantize(x.data, x.size, lo, inv_delta, offsets.data, maxval, out.data));
}
// (level, a, b) -> popcount(a & b)
Napi::Value PopcountAnd(const Napi::CallbackInfo& info) {
  const auto& k = kernels_arg(info, 0);
  Napi::Env env = info.Env();
  const auto a = array_arg<uint64_t>(env, info[1], "a");
  const auto b = array_arg<uint64_t>(env, info[2], "b", a.size);
  return number(env, static_cast<double>(k.popcount_and(a.data, b.data, a.size)));
}
// (level, planes, bits, code) -> number; planes hold bits * code.length words.
Napi::Value BitplaneIp(const Napi::CallbackInfo& info) {
  const auto& k = kernels_arg(info, 0);
  Napi::Env env = info.Env();
  const size_t bits = uint32_arg(env, info[2], "bits");
  const auto code = array_arg<uint64_t>(env, info[3], "code");
  const auto planes = array_arg<uint64_t>(env, info[1], "planes", bits * code.size);
  return number(env, static_cast<double>(k.bitplane_ip(planes.data, bits, code.data, code.size)));
}
// (level, codes u8, luts u8, npairs, out u16): 32 bytes per pair in codes and luts, 32 outputs.
Napi::Value Fastscan(const Napi::CallbackInfo& info) {
  const auto& k = kernels_arg(info, 0);
  Napi::Env env = info.Env();
  const size_t npairs = uint32_arg(env, info[3], "npairs");
  const auto codes = array_arg<uint8_t>(env, info[1], "codes", npairs * 32);
  const auto luts = array_arg<uint8_t>(env, info[2], "luts", npairs * 32);
  const auto out = array_arg<uint16_t>(env, info[4], "out", kFastScanBlock);
  k.fastscan(codes.data, luts.data, npairs, out.data);
  return env.Undefined();
}
// (level, qu u8, npairs, luts u8): qu npairs*8, luts npairs*32.
Napi::Value FastscanLuts(const Napi::CallbackInfo& info) {
  const auto& k = kernels_arg(info, 0);
  Napi::Env env = info.Env();
  const size_t npairs = uint32_arg(env, info[2], "npairs");
  const auto qu = array_arg<uint8_t>(env, info[1], "qu", npairs * 8);
  const auto luts = array_arg<uint8_t>(env, info[3], "luts", npairs * 32);
  k.fastscan_luts(qu.data, npairs, luts.data);
  return env.Undefined();
}
// (level, xs, np, dim, ct, out): xs np*dim, ct dim*16, out np*16.
Napi::Value DotTile16(const Napi::CallbackInfo& info) {
  const auto& k = kernels_arg(info, 0);
  Napi::Env env = info.Env();
  const size_t np = uint32_arg(env, info[2], "np");
  const size_t dim = uint32_arg(env, info[3], "dim");
  const auto xs = array_arg<float>(env, info[1], "xs", np * dim);
  const auto ct = array_arg<float>(env, info[4], "ct", dim * 16);
  const auto out = array_arg<float>(env, info[5], "out", np * 16);
  k.dot_tile16(xs.data, np, dim, ct.data, out.data);
  return env.Undefined();
}
// (level, xs, np, dim, ct u16, out)
Napi::Value DotTile16F16(const Napi::CallbackInfo& info) {
  const auto& k = kernels_arg(info, 0);
  Napi::Env env = info.Env();
  const size_t np = uint32_arg(env, info[2], "np");
  const size_t dim = uint32_arg(env, info[3], "dim");
  const auto xs = array_arg<float>(env, info[1], "xs", np * dim);
  const auto ct = array_arg<uint16_t>(env, info[4], "ct", dim * 16);
  const auto out = array_arg<float>(env, info[5], "out", np * 16);
  k.dot_tile16_f16(xs.data, np, dim, ct.data, out.data);
  return env.Undefined();
}
// (level, factors f32 (4 per vector), ip u16 (n <= 32), params [6], est out, lower out,
// threshold number) -> the mask of lower <= threshold
Napi::Value Estimate(const Napi::CallbackInfo& info) {
  const auto& k = kernels_arg(info, 0);
  Napi::Env env = info.Env();
  const auto ip = array_arg<uint16_t>(env, info[2], "ip");
  const size_t n = ip.size;
  if (n > kFastScanBlock) throw_range_error(env, "ip must hold at most 32 values, got " + std::to_string(n));
  const auto factors = array_arg<float>(env, info[1], "factors", 4 * n);
  const auto params = array_arg<float>(env, info[3], "params", 6);
  const auto est = array_arg<float>(env, info[4], "est", n);
  const auto lower = array_arg<float>(env, info[5], "lower", n);
  const float* p = params.data;
  const EstimateParams ep{p[0], p[1], p[2], p[3], p[4], p[5]};
  if (!info[6].IsNumber()) throw_type_error(env, "threshold must be a number");
  const float threshold = info[6].As<Napi::Number>().FloatValue();
  return Napi::Number::New(env, k.estimate(factors.data, ip.data, n, ep, threshold, est.data, lower.data));
}
// (float32 in, uint16 out)
Napi::Value FloatToHalf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto in = array_arg<float>(env, info[0], "input");
  const auto out = array_arg<uint16_t>(env, info[1], "out", in.size);
  for (size_t i = 0; i < in.size; ++i) out.data[i] = float_to_half(in.data[i]);
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto k = Napi::Object::New(env);
  k.Set("l2sq", Napi::Function::New(env, L2sq));
  k.Set("dot", Napi::Function::New(env, Dot));
  k.Set("minmax", Napi::Function::New(env, Minmax));
  k.Set("quantize", Napi::Function::New(env, Quantize));
  k.Set("popcountAnd", Napi::Function::New(env, PopcountAnd));
  k.Set("bitplaneIp", Napi::Function::New(env, BitplaneIp));
  k.Set("fastscan", Napi::Function::New(env, Fastscan));
  k.Set("fastscanLuts", Napi::Function::New(env, FastscanLuts));
  k.Set("estimate", Napi::Function::New(env, Estimate));
  k.Set("dotTile16", Napi::Function::New(env, DotTile16));
  k.Set("dotTile16F16", Napi::Function::New(env, DotTile16F16));
  k.Set("floatToHalf", Napi::Function::New(env, FloatToHalf));
  exports.Set("kernels", k);
  return exports;
}

}  // namespace
}  // namespace rabitq::binding

static Napi::Object RabitqTestingInit(Napi::Env env, Napi::Object exports) {
  return rabitq::binding::Init(env, exports);
}
NODE_API_MODULE(rabitq_testing, RabitqTestingInit)
