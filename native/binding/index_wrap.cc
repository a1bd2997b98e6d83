#include "index_wrap.h"

#include <algorithm>
#include <string>
#include <vector>

#include "args.h"
#include "batch_worker.h"
#include "errors.h"
#include "search_args.h"
#include "task_worker.h"

namespace rabitq::binding {

Napi::Function IndexWrap::Define(Napi::Env env) {
  return DefineClass(env, "NativeIvfRabitqIndex",
                     {
                         InstanceMethod("search", &IndexWrap::Search),
                         InstanceMethod("searchBatch", &IndexWrap::SearchBatch),
                         InstanceMethod("estimateAll", &IndexWrap::EstimateAll),
                         InstanceMethod("info", &IndexWrap::Info),
                         InstanceMethod("size", &IndexWrap::Size),
                         InstanceMethod("centroids", &IndexWrap::Centroids),
                         InstanceMethod("add", &IndexWrap::Add),
                         InstanceMethod("remove", &IndexWrap::Remove),
                         InstanceMethod("contains", &IndexWrap::Contains),
                         InstanceMethod("compact", &IndexWrap::Compact),
                         InstanceMethod("save", &IndexWrap::Save),
                         InstanceMethod("toBuffer", &IndexWrap::ToBuffer),
                         InstanceMethod("verify", &IndexWrap::Verify),
                         InstanceMethod("close", &IndexWrap::Close),
                     });
}

IndexWrap::IndexWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<IndexWrap>(info) {
  napi_valuetype t = napi_undefined;
  napi_typeof(info.Env(), info[0], &t);
  if (t != napi_external)
    throw_type_error(info.Env(), "NativeIvfRabitqIndex is made by buildIndex, loadIndex or indexFromBuffer");
  auto* made = info[0].As<Napi::External<std::unique_ptr<IvfRabitqIndex>>>().Data();
  if (made == nullptr || *made == nullptr) throw_type_error(info.Env(), "NativeIvfRabitqIndex: no index");
  index_ = std::shared_ptr<IvfRabitqIndex>(std::move(*made));
}

// search(query, k, nprobe, rerank, epsilon, bitplane, idsOut, distsOut, statsOut|null, filterKind, filter)
// Positional arguments: this is the latency-critical path.
Napi::Value IndexWrap::Search(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const size_t dim = live(env)->dim();
  const Span<float> query = array_arg<float>(env, info[0], "query", dim);
  if (query.size != dim)
    throw_type_error(env, "query must be a Float32Array of dim (" + std::to_string(dim) + ") elements, got " +
                              std::to_string(query.size));
  SearchParams sp;
  sp.k = uint32_arg(env, info[1], "k");
  sp.nprobe = uint32_arg(env, info[2], "nprobe");
  sp.rerank = bool_arg(env, info[3], "rerank");
  sp.epsilon = static_cast<float>(number_arg(env, info[4], "epsilon"));
  sp.bitplane = bool_arg(env, info[5], "bitplane");
  const IdsOut out = ids_out_arg(env, info[6], "ids", sp.k);
  float* dists = array_arg<float>(env, info[7], "dists", sp.k).data;
  double* stats = optional_array_arg<double>(env, info[8], "stats", kStatsFields).data;
  Filter filter;
  if (to_filter(filter_arg(info, 9, 10), &filter)) sp.filter = &filter;
  const std::shared_ptr<IvfRabitqIndex> index = live(env);
  guarded(env, [&] {
    SearchStats st;
    if (out.i64) {
      index->search(query.data, sp, out.i64, dists, stats ? &st : nullptr);
    } else {
      // Per thread (each worker_threads Worker has its own): no allocation per call.
      thread_local std::vector<int64_t> ids64;
      if (ids64.size() < sp.k) ids64.resize(sp.k);
      index->search(query.data, sp, ids64.data(), dists, stats ? &st : nullptr);
      for (size_t i = 0; i < sp.k; ++i) out.i32[i] = static_cast<int32_t>(ids64[i]);
    }
    if (stats) write_stats(st, stats);
  });
  return env.Undefined();
}

// searchBatch(queries, {k,nprobe,rerank,epsilon,bitplane,threads}, idsOut, distsOut, statsOut|null, filterKind, filter)
Napi::Value IndexWrap::SearchBatch(const Napi::CallbackInfo& info) {
  return BatchWorker::Start(info, live(info.Env()));
}

// estimateAll(query, estOut, boundOut, bitplane): outputs indexed by id, at least size() entries.
Napi::Value IndexWrap::EstimateAll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const size_t dim = live(env)->dim();
  const Span<float> query = array_arg<float>(env, info[0], "query", dim);
  if (query.size != dim)
    throw_type_error(env, "query must be a Float32Array of dim (" + std::to_string(dim) + ") elements, got " +
                              std::to_string(query.size));
  const size_t n = live(env)->size();
  const Span<float> est = array_arg<float>(env, info[1], "estimates", n);
  const Span<float> bounds = array_arg<float>(env, info[2], "bounds", n);
  const bool bitplane = bool_arg(env, info[3], "bitplane");
  guarded(env, [&] {
    live(env)->estimate_all(query.data, est.data, bounds.data, bitplane, std::min(est.size, bounds.size));
  });
  return env.Undefined();
}

Napi::Value IndexWrap::Size(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(live(info.Env())->size()));
}

Napi::Value IndexWrap::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&] {
    const std::shared_ptr<IvfRabitqIndex> held = live(env);
    const IvfRabitqIndex& index = *held;
    auto o = Napi::Object::New(env);
    o.Set("dim", static_cast<double>(index.dim()));
    o.Set("paddedDim", static_cast<double>(index.padded_dim()));
    o.Set("size", static_cast<double>(index.size()));
    o.Set("numClusters", static_cast<double>(index.num_clusters()));
    static const char* const metrics[] = {"l2", "cosine", "ip"};
    o.Set("metric", metrics[static_cast<int>(index.metric())]);
    o.Set("idType", index.ids64() ? "u64" : "u32");
    o.Set("storeVectors", index.has_vectors());
    o.Set("bits", static_cast<double>(index.bits()));
    o.Set("rotation", index.rotation_kind() == RotationKind::kDense ? "dense" : "fht");
    const MemoryUsage m = index.memory_usage();
    auto mo = Napi::Object::New(env);
    mo.Set("codes", static_cast<double>(m.codes));
    mo.Set("factors", static_cast<double>(m.factors));
    mo.Set("exCodes", static_cast<double>(m.ex_codes));
    mo.Set("ids", static_cast<double>(m.ids));
    mo.Set("vectors", static_cast<double>(m.vectors));
    mo.Set("centroids", static_cast<double>(m.centroids));
    mo.Set("other", static_cast<double>(m.other));
    mo.Set("total", static_cast<double>(m.total()));
    mo.Set("mapped", static_cast<double>(m.mapped));
    o.Set("memory", mo);
    const BuildTimings t = index.timings();
    auto to = Napi::Object::New(env);
    to.Set("trainMs", t.train_ms);
    to.Set("assignMs", t.assign_ms);
    to.Set("encodeMs", t.encode_ms);
    o.Set("timings", to);
    return o;
  });
}

Napi::Value IndexWrap::Centroids(const Napi::CallbackInfo& info) {
  const std::shared_ptr<IvfRabitqIndex> index = live(info.Env());
  const auto& c = index->centroids();
  auto arr = Napi::Float32Array::New(info.Env(), c.size());
  std::copy(c.begin(), c.end(), arr.Data());
  return arr;
}

// add(vectors, ids: Uint32Array|BigUint64Array|undefined, threads): Promise<void>
Napi::Value IndexWrap::Add(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto idx = live(info.Env());
  const Span<float> vectors = array_arg<float>(env, info[0], "vectors");
  const size_t dim = idx->dim();
  // TypeScript checked the lengths when add() was called, but the call runs
  // later (queued behind earlier changes): a buffer detached or shrunk
  // meanwhile reads as empty here.
  if (vectors.size == 0 || vectors.size % dim != 0)
    throw_type_error(env, "vectors must be a non-empty Float32Array whose length is a multiple of dim (" +
                              std::to_string(dim) + "), got " + std::to_string(vectors.size) +
                              " elements (detached or resized before the add ran?)");
  const size_t n = vectors.size / dim;
  const IdsIn ids = ids_in_arg(env, info[1], "ids", n);
  const size_t threads = uint32_arg(env, info[2], "threads");
  // Copies, not borrowed memory: the caller can transfer or shrink the
  // buffers while the add runs (see BuildWorker::Start; the same cost, for
  // the vectors being added).
  auto data = std::make_shared<std::vector<float>>(vectors.data, vectors.data + vectors.size);
  auto ids32 = std::make_shared<std::vector<uint32_t>>();
  auto ids64 = std::make_shared<std::vector<uint64_t>>();
  if (ids.ids32) ids32->assign(ids.ids32, ids.ids32 + n);
  if (ids.ids64) ids64->assign(ids.ids64, ids.ids64 + n);
  auto run = [=] {
    idx->add(data->data(), n, ids.ids32 ? ids32->data() : nullptr, ids.ids64 ? ids64->data() : nullptr,
             ThreadPool::global(), threads);
  };
  return TaskWorker::Start(env, "rabitq:add", run, nullptr, {info.This()});
}

// remove(ids: BigUint64Array): Promise<number>
Napi::Value IndexWrap::Remove(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto idx = live(info.Env());
  const Span<uint64_t> span = array_arg<uint64_t>(env, info[0], "ids");
  // A copy (8 bytes per id), for the reason Add copies.
  auto ids = std::make_shared<std::vector<uint64_t>>(span.data, span.data + span.size);
  auto removed = std::make_shared<size_t>(0);
  return TaskWorker::Start(
      env, "rabitq:remove", [=] { *removed = idx->remove(ids->data(), ids->size()); },
      [=](Napi::Env e) { return Napi::Number::New(e, static_cast<double>(*removed)); }, {info.This()});
}

// contains(id: bigint): boolean
Napi::Value IndexWrap::Contains(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  napi_valuetype t = napi_undefined;
  napi_typeof(env, info[0], &t);
  if (t != napi_bigint) throw_wrong_type(env, "id", "a bigint", info[0]);
  bool lossless = false;
  const uint64_t id = info[0].As<Napi::BigInt>().Uint64Value(&lossless);
  const std::shared_ptr<IvfRabitqIndex> index = live(env);
  const bool found = lossless && guarded(env, [&] { return index->contains(id); });
  return Napi::Boolean::New(env, found);
}

Napi::Value IndexWrap::Compact(const Napi::CallbackInfo& info) {
  auto idx = live(info.Env());
  return TaskWorker::Start(info.Env(), "rabitq:compact", [=] { idx->compact(); }, nullptr, {info.This()});
}

// save(path): Promise<void>
Napi::Value IndexWrap::Save(const Napi::CallbackInfo& info) {
  auto idx = live(info.Env());
  const std::string path = string_arg(info.Env(), info[0], "path");
  return TaskWorker::Start(info.Env(), "rabitq:save", [=] { idx->save(path); }, nullptr, {info.This()});
}

// toBuffer(): Promise<Buffer>
Napi::Value IndexWrap::ToBuffer(const Napi::CallbackInfo& info) {
  auto idx = live(info.Env());
  auto bytes = std::make_shared<std::vector<uint8_t>>();
  return TaskWorker::Start(
      info.Env(), "rabitq:toBuffer", [=] { *bytes = idx->to_bytes(); },
      [=](Napi::Env env) -> Napi::Value {
        // The Buffer owns the vector's memory: no second copy.
        auto held = std::make_unique<std::vector<uint8_t>>(std::move(*bytes));
        auto buf = Napi::Buffer<uint8_t>::New(
            env, held->data(), held->size(), [](Napi::Env, uint8_t*, std::vector<uint8_t>* v) { delete v; },
            held.get());
        held.release();
        return buf;
      },
      {info.This()});
}

Napi::Value IndexWrap::Verify(const Napi::CallbackInfo& info) {
  auto idx = live(info.Env());
  return TaskWorker::Start(info.Env(), "rabitq:verify", [=] { idx->verify(); }, nullptr, {info.This()});
}

}  // namespace rabitq::binding

namespace rabitq::binding {

std::shared_ptr<IvfRabitqIndex> IndexWrap::live(Napi::Env env) const {
  if (!index_) {
    Napi::Error err = Napi::Error::New(env, "the index is closed (index.close() was called)");
    err.Set("code", Napi::String::New(env, "ECLOSED"));
    throw err;
  }
  return index_;
}

// close(): drops this wrapper's share of the index. Calls in flight hold
// their own share (every async method captures one), so they finish on the
// index; its memory and file mapping go when the last of them settles, at
// once when none is running. Later calls throw ECLOSED.
Napi::Value IndexWrap::Close(const Napi::CallbackInfo& info) {
  index_.reset();
  return info.Env().Undefined();
}

}  // namespace rabitq::binding
