// Module init of the library addon (rabitq.node) and its module-level
// functions. The kernel test hooks live in a separate test-only addon
// (testing/kernel_hooks.cc, rabitq_testing.node).
#include "addon.h"

#include <string>

#include "../core/exact_knn.h"
#include "../core/kernels/kernels.h"
#include "../core/persist/blob.h"
#include "../core/thread_pool.h"
#include "args.h"
#include "build_worker.h"
#include "errors.h"
#include "index_wrap.h"
#include "task_worker.h"

namespace rabitq::binding {

// Plain data properties, as `exports.x = ...` would make them.
constexpr auto kExported = static_cast<napi_property_attributes>(napi_writable | napi_enumerable | napi_configurable);

Addon::Addon(Napi::Env env, Napi::Object exports) {
  // Resolve the SIMD level now so a bad RABITQ_SIMD fails the require with a
  // clear message instead of failing later (or crashing) inside a kernel.
  guarded(env, [] { active_kernels(); });
  Napi::Function index_class = IndexWrap::Define(env);
  index_constructor_ = Napi::Persistent(index_class);
  DefineAddon(exports, {
                           InstanceMethod("simdLevel", &Addon::SimdLevel, kExported),
                           InstanceMethod("detectedLevel", &Addon::DetectedLevel, kExported),
                           InstanceMethod("setSimdLevel", &Addon::SetSimdLevel, kExported),
                           InstanceMethod("poolInfo", &Addon::PoolInfo, kExported),
                           InstanceMethod("exactKnn", &Addon::ExactKnn, kExported),
                           InstanceMethod("buildIndex", &Addon::BuildIndex, kExported),
                           InstanceMethod("loadIndex", &Addon::LoadIndex, kExported),
                           InstanceMethod("indexFromBuffer", &Addon::IndexFromBuffer, kExported),
                           InstanceValue("NativeIvfRabitqIndex", index_class, kExported),
                       });
}

Napi::Object Addon::NewIndex(Napi::Env env, std::unique_ptr<IvfRabitqIndex> index) {
  // The constructor takes the index out of `index` (see IndexWrap).
  return index_constructor_.New({Napi::External<std::unique_ptr<IvfRabitqIndex>>::New(env, &index)});
}

Napi::Value Addon::SimdLevel(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), level_name(active_level()));
}

Napi::Value Addon::DetectedLevel(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), level_name(detected_level()));
}

// setSimdLevel(name): process-wide (every environment shares the kernels).
Napi::Value Addon::SetSimdLevel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string name = string_arg(env, info[0], "level");
  rabitq::SimdLevel level;
  if (!parse_level(name.c_str(), &level)) throw_range_error(env, "unknown SIMD level " + name);
  if (kernels_for(level) == nullptr) throw_range_error(env, "SIMD level " + name + " is not supported by this CPU");
  guarded(env, [&] { set_active_level(level); });
  return env.Undefined();
}

Napi::Value Addon::PoolInfo(const Napi::CallbackInfo& info) {
  auto o = Napi::Object::New(info.Env());
  o.Set("threads", static_cast<double>(ThreadPool::global().size()));
  o.Set("affinityCpus", static_cast<double>(ThreadPool::affinity_cpus()));
  return o;
}

// exactKnn(base, queries, dim, k, threads, idsOut, distsOut): Promise<void>
Napi::Value Addon::ExactKnn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Span<float> base = array_arg<float>(env, info[0], "base");
  const Span<float> queries = array_arg<float>(env, info[1], "queries");
  const size_t dim = uint32_arg(env, info[2], "dim");
  const size_t k = uint32_arg(env, info[3], "k");
  const size_t threads = uint32_arg(env, info[4], "threads");
  if (dim == 0) throw_range_error(env, "dim must be >= 1");
  if (base.size % dim != 0 || queries.size % dim != 0)
    throw_type_error(env, "base.length (" + std::to_string(base.size) + ") and queries.length (" +
                              std::to_string(queries.size) + ") must be multiples of dim (" + std::to_string(dim) +
                              ")");
  const size_t n = base.size / dim, nq = queries.size / dim;
  // Checked now for the message; written in the completion (checked again there).
  array_arg<int32_t>(env, info[5], "ids", nq * k);
  array_arg<float>(env, info[6], "dists", nq * k);
  // The inputs are copied (the caller could transfer or shrink them while the
  // search runs, see BuildWorker::Start): one more copy of base for the
  // length of the call. Results go to private buffers and are copied out on
  // the JS thread, where the output arrays are checked again.
  auto base_copy = std::make_shared<std::vector<float>>(base.data, base.data + base.size);
  auto query_copy = std::make_shared<std::vector<float>>(queries.data, queries.data + queries.size);
  auto ids_out = std::make_shared<std::vector<int32_t>>(nq * k);
  auto dists_out = std::make_shared<std::vector<float>>(nq * k);
  Napi::Reference<Napi::Value> ids_ref = Napi::Persistent(info[5]);
  Napi::Reference<Napi::Value> dists_ref = Napi::Persistent(info[6]);
  auto refs = std::make_shared<std::pair<Napi::Reference<Napi::Value>, Napi::Reference<Napi::Value>>>(
      std::move(ids_ref), std::move(dists_ref));
  return TaskWorker::Start(
      env, "rabitq:exactKnn",
      [=] {
        exact_knn(base_copy->data(), n, query_copy->data(), nq, dim, k, ids_out->data(), dists_out->data(),
                  ThreadPool::global(), threads);
      },
      [=](Napi::Env e) -> Napi::Value {
        const Span<int32_t> ids_now = array_arg<int32_t>(e, refs->first.Value(), "ids", nq * k);
        const Span<float> dists_now = array_arg<float>(e, refs->second.Value(), "dists", nq * k);
        std::copy(ids_out->begin(), ids_out->end(), ids_now.data);
        std::copy(dists_out->begin(), dists_out->end(), dists_now.data);
        return e.Undefined();
      });
}

// buildIndex(vectors, params, onProgress|undefined): Promise<NativeIvfRabitqIndex>
Napi::Value Addon::BuildIndex(const Napi::CallbackInfo& info) { return BuildWorker::Start(info); }

// loadIndex(path, mmap, verify): Promise<NativeIvfRabitqIndex>
Napi::Value Addon::LoadIndex(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = string_arg(env, info[0], "path");
  const bool mmap = bool_arg(env, info[1], "mmap");
  const bool verify = bool_arg(env, info[2], "verify");
  auto made = std::make_shared<std::unique_ptr<IvfRabitqIndex>>();
  return TaskWorker::Start(
      env, "rabitq:load",
      [=] {
        auto blob = mmap ? persist::Blob::map_file(path) : persist::Blob::read_file(path);
        *made = IvfRabitqIndex::load(blob, path, /*lazy=*/mmap && !verify);
      },
      [=](Napi::Env e) { return Of(e).NewIndex(e, std::move(*made)); });
}

// indexFromBuffer(bytes: Uint8Array): Promise<NativeIvfRabitqIndex>; the bytes are copied once.
Napi::Value Addon::IndexFromBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Span<uint8_t> bytes = array_arg<uint8_t>(env, info[0], "bytes");
  // The copy is made here, on the JS thread: the caller could transfer or
  // shrink the buffer before a worker got to it (see BuildWorker::Start).
  std::shared_ptr<persist::Blob> blob = guarded(env, [&] { return persist::Blob::copy_of(bytes.data, bytes.size); });
  auto made = std::make_shared<std::unique_ptr<IvfRabitqIndex>>();
  return TaskWorker::Start(
      env, "rabitq:fromBuffer", [=] { *made = IvfRabitqIndex::load(blob, "buffer", false); },
      [=](Napi::Env e) { return Of(e).NewIndex(e, std::move(*made)); });
}

}  // namespace rabitq::binding

using RabitqAddon = rabitq::binding::Addon;
NODE_API_NAMED_ADDON(rabitq, RabitqAddon)
