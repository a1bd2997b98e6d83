// The N-API layer only: unpack arguments (already validated in TypeScript),
// call the core, and run long work on the native pool behind Promises.
// Worker threads never touch JS values: inputs are pinned by references and
// read through raw pointers; results are converted in OnOK.
#include <napi.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../core/common.h"
#include "../core/exact_knn.h"
#include "../core/ivf_index.h"
#include "../core/kernels/kernels.h"
#include "../core/persist/blob.h"
#include "../core/thread_pool.h"

namespace {

using rabitq::ErrorKind;

Napi::Error to_js_error(Napi::Env env, const rabitq::Error& e) {
  switch (e.kind()) {
    case ErrorKind::kRange:
      return Napi::RangeError::New(env, e.what());
    case ErrorKind::kType:
      return Napi::TypeError::New(env, e.what());
    default:
      return Napi::Error::New(env, e.what());
  }
}

#define GUARD_BEGIN try {
#define GUARD_END(env)                                 \
  }                                                    \
  catch (const rabitq::Error& e) {                     \
    throw to_js_error(env, e);                         \
  }                                                    \
  catch (const std::bad_alloc&) {                      \
    throw Napi::Error::New(env, "out of memory");      \
  }                                                    \
  catch (const Napi::Error&) {                         \
    throw;                                             \
  }                                                    \
  catch (const std::exception& e) {                    \
    throw Napi::Error::New(env, e.what());             \
  }

template <typename T>
T* data_of(const Napi::Value& v) {
  auto ta = v.As<Napi::TypedArray>();
  auto ab = ta.ArrayBuffer();
  return reinterpret_cast<T*>(static_cast<uint8_t*>(ab.Data()) + ta.ByteOffset());
}
size_t length_of(const Napi::Value& v) { return v.As<Napi::TypedArray>().ElementLength(); }

const rabitq::Kernels& kernels_arg(const Napi::CallbackInfo& info, size_t i) {
  std::string name = info[i].As<Napi::String>().Utf8Value();
  rabitq::SimdLevel level;
  if (!rabitq::parse_level(name.c_str(), &level)) throw Napi::RangeError::New(info.Env(), "unknown SIMD level " + name);
  const rabitq::Kernels* k = rabitq::kernels_for(level);
  if (k == nullptr) throw Napi::RangeError::New(info.Env(), "SIMD level " + name + " is not supported by this CPU");
  return *k;
}

// Search results: the core writes 64-bit ids; 32-bit indexes hand the caller
// an Int32Array, 64-bit ones a BigInt64Array (written in place).
struct IdsOut {
  int32_t* i32 = nullptr;
  int64_t* i64 = nullptr;
};
IdsOut ids_out(const Napi::Value& v) {
  IdsOut o;
  if (v.As<Napi::TypedArray>().TypedArrayType() == napi_bigint64_array)
    o.i64 = data_of<int64_t>(v);
  else
    o.i32 = data_of<int32_t>(v);
  return o;
}

// Caller ids: a Uint32Array or a BigUint64Array (anything else: neither).
void ids_in(const Napi::Value& v, const uint32_t** ids32, const uint64_t** ids64) {
  *ids32 = nullptr;
  *ids64 = nullptr;
  if (!v.IsTypedArray()) return;
  if (v.As<Napi::TypedArray>().TypedArrayType() == napi_biguint64_array)
    *ids64 = data_of<uint64_t>(v);
  else
    *ids32 = data_of<uint32_t>(v);
}

// (kind, array): 0 none, 1 bitset Uint8Array, 2 ascending Uint32Array, 3 ascending BigUint64Array.
bool filter_from(const Napi::Value& kind, const Napi::Value& arr, rabitq::Filter* f) {
  const uint32_t k = kind.IsNumber() ? kind.As<Napi::Number>().Uint32Value() : 0;
  if (k == 0) return false;
  const size_t n = length_of(arr);
  if (k == 1) {
    f->bits = data_of<uint8_t>(arr);
    f->nbits = n * 8;
  } else if (k == 2) {
    f->sorted32 = data_of<uint32_t>(arr);
    f->count = n;
  } else {
    f->sorted64 = data_of<uint64_t>(arr);
    f->count = n;
  }
  return true;
}

// ---- kernels, exposed for the tests and the kernel benchmark ----------------

Napi::Value KernelL2sq(const Napi::CallbackInfo& info) {
  const auto& k = kernels_arg(info, 0);
  return Napi::Number::New(info.Env(), k.l2sq(data_of<float>(info[1]), data_of<float>(info[2]), length_of(info[1])));
}
Napi::Value KernelDot(const Napi::CallbackInfo& info) {
  const auto& k = kernels_arg(info, 0);
  return Napi::Number::New(info.Env(), k.dot(data_of<float>(info[1]), data_of<float>(info[2]), length_of(info[1])));
}
Napi::Value KernelMinmax(const Napi::CallbackInfo& info) {
  const auto& k = kernels_arg(info, 0);
  float lo, hi;
  k.minmax(data_of<float>(info[1]), length_of(info[1]), &lo, &hi);
  auto arr = Napi::Array::New(info.Env(), 2);
  arr.Set(0u, Napi::Number::New(info.Env(), lo));
  arr.Set(1u, Napi::Number::New(info.Env(), hi));
  return arr;
}
// (level, x, lo, invDelta, offsets, maxval, out) -> sum
Napi::Value KernelQuantize(const Napi::CallbackInfo& info) {
  const auto& k = kernels_arg(info, 0);
  uint32_t s = k.quantize(data_of<float>(info[1]), length_of(info[1]), info[2].As<Napi::Number>().FloatValue(),
                          info[3].As<Napi::Number>().FloatValue(), data_of<float>(info[4]),
                          info[5].As<Napi::Number>().Uint32Value(), data_of<uint8_t>(info[6]));
  return Napi::Number::New(info.Env(), s);
}
Napi::Value KernelPopcountAnd(const Napi::CallbackInfo& info) {
  const auto& k = kernels_arg(info, 0);
  return Napi::Number::New(info.Env(), static_cast<double>(k.popcount_and(
                                           data_of<uint64_t>(info[1]), data_of<uint64_t>(info[2]), length_of(info[1]))));
}
// (level, planes, bits, code) -> number
Napi::Value KernelBitplaneIp(const Napi::CallbackInfo& info) {
  const auto& k = kernels_arg(info, 0);
  const size_t bits = info[2].As<Napi::Number>().Uint32Value();
  const size_t words = length_of(info[3]);
  return Napi::Number::New(info.Env(), static_cast<double>(k.bitplane_ip(data_of<uint64_t>(info[1]), bits,
                                                                         data_of<uint64_t>(info[3]), words)));
}
// (level, codes u8, luts u8, npairs, out u16)
Napi::Value KernelFastscan(const Napi::CallbackInfo& info) {
  const auto& k = kernels_arg(info, 0);
  k.fastscan(data_of<uint8_t>(info[1]), data_of<uint8_t>(info[2]), info[3].As<Napi::Number>().Uint32Value(),
             data_of<uint16_t>(info[4]));
  return info.Env().Undefined();
}
// (level, xs, np, dim, ct, out)
Napi::Value KernelDotTile16(const Napi::CallbackInfo& info) {
  const auto& k = kernels_arg(info, 0);
  k.dot_tile16(data_of<float>(info[1]), info[2].As<Napi::Number>().Uint32Value(),
               info[3].As<Napi::Number>().Uint32Value(), data_of<float>(info[4]), data_of<float>(info[5]));
  return info.Env().Undefined();
}

// (level, xs, np, dim, ct u16, out)
Napi::Value KernelDotTile16F16(const Napi::CallbackInfo& info) {
  const auto& k = kernels_arg(info, 0);
  k.dot_tile16_f16(data_of<float>(info[1]), info[2].As<Napi::Number>().Uint32Value(),
                   info[3].As<Napi::Number>().Uint32Value(), data_of<uint16_t>(info[4]), data_of<float>(info[5]));
  return info.Env().Undefined();
}
// (level, factors f32 (4 per vector), ip u16, params [6], est out, lower out)
Napi::Value KernelEstimate(const Napi::CallbackInfo& info) {
  const auto& k = kernels_arg(info, 0);
  const float* p = data_of<float>(info[3]);
  const rabitq::EstimateParams ep{p[0], p[1], p[2], p[3], p[4], p[5]};
  k.estimate(data_of<float>(info[1]), data_of<uint16_t>(info[2]), length_of(info[2]), ep, data_of<float>(info[4]),
             data_of<float>(info[5]));
  return info.Env().Undefined();
}
// (float32 in, uint16 out)
Napi::Value KernelFloatToHalf(const Napi::CallbackInfo& info) {
  const float* in = data_of<float>(info[0]);
  uint16_t* out = data_of<uint16_t>(info[1]);
  for (size_t i = 0; i < length_of(info[0]); ++i) out[i] = rabitq::float_to_half(in[i]);
  return info.Env().Undefined();
}

// ---- process-wide settings ---------------------------------------------------

Napi::Value SimdLevel(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), rabitq::level_name(rabitq::active_level()));
}
Napi::Value DetectedLevel(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), rabitq::level_name(rabitq::detected_level()));
}
Napi::Value SetSimdLevel(const Napi::CallbackInfo& info) {
  GUARD_BEGIN
  const auto& k = kernels_arg(info, 0);
  rabitq::set_active_level(k.level);
  GUARD_END(info.Env())
  return info.Env().Undefined();
}
Napi::Value PoolInfo(const Napi::CallbackInfo& info) {
  auto o = Napi::Object::New(info.Env());
  o.Set("threads", static_cast<double>(rabitq::ThreadPool::global().size()));
  o.Set("affinityCpus", static_cast<double>(rabitq::ThreadPool::affinity_cpus()));
  return o;
}

// ---- a Promise-returning worker that pins its JS inputs ------------------------

class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Pin(const Napi::Value& v) { pins_.emplace_back(Napi::Persistent(v.As<Napi::Object>())); }

 protected:
  void Execute() override {
    try {
      Run();
    } catch (const rabitq::Error& e) {
      kind_ = e.kind();
      SetError(e.what());
    } catch (const std::bad_alloc&) {
      SetError("out of memory");
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnError(const Napi::Error& e) override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    const std::string msg = e.Message();
    Napi::Error err = kind_ == ErrorKind::kRange  ? Napi::RangeError::New(env, msg)
                      : kind_ == ErrorKind::kType ? Napi::TypeError::New(env, msg)
                                                  : Napi::Error::New(env, msg);
    // Bad index files and buffers: a code the TypeScript layer turns into IndexFileError.
    if (kind_ == ErrorKind::kFormat) err.Set("code", "EBADINDEX");
    Finish();
    deferred_.Reject(err.Value());
  }
  virtual void Run() = 0;
  virtual void Finish() {}
  Napi::Promise::Deferred deferred_;

 private:
  std::vector<Napi::ObjectReference> pins_;
  ErrorKind kind_ = ErrorKind::kGeneric;
};

// Runs `run` on a libuv worker; `done` makes the resolved value on the JS thread.
class LambdaWorker : public PromiseWorker {
 public:
  LambdaWorker(Napi::Env env, std::function<void()> run, std::function<Napi::Value(Napi::Env)> done)
      : PromiseWorker(env), run_(std::move(run)), done_(std::move(done)) {}
  void Run() override { run_(); }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    deferred_.Resolve(done_ ? done_(env) : env.Undefined());
  }

 private:
  std::function<void()> run_;
  std::function<Napi::Value(Napi::Env)> done_;
};

Napi::Value queue(LambdaWorker* w) {
  auto p = w->Promise();
  w->Queue();
  return p;
}

class ExactKnnWorker : public PromiseWorker {
 public:
  ExactKnnWorker(const Napi::CallbackInfo& info) : PromiseWorker(info.Env()) {
    base_ = data_of<float>(info[0]);
    queries_ = data_of<float>(info[1]);
    dim_ = info[2].As<Napi::Number>().Uint32Value();
    k_ = info[3].As<Napi::Number>().Uint32Value();
    threads_ = info[4].As<Napi::Number>().Uint32Value();
    n_ = length_of(info[0]) / dim_;
    nq_ = length_of(info[1]) / dim_;
    ids_ = data_of<int32_t>(info[5]);
    dists_ = data_of<float>(info[6]);
    for (int i : {0, 1, 5, 6}) Pin(info[i]);
  }
  void Run() override {
    rabitq::exact_knn(base_, n_, queries_, nq_, dim_, k_, ids_, dists_, rabitq::ThreadPool::global(), threads_);
  }
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }

 private:
  const float *base_, *queries_;
  size_t dim_, k_, threads_, n_, nq_;
  int32_t* ids_;
  float* dists_;
};

// exactKnn(base, queries, dim, k, threads, idsOut, distsOut): Promise<void>
Napi::Value ExactKnn(const Napi::CallbackInfo& info) {
  auto* w = new ExactKnnWorker(info);
  auto p = w->Promise();
  w->Queue();
  return p;
}

// ---- the index -----------------------------------------------------------------

class Index : public Napi::ObjectWrap<Index> {
 public:
  static Napi::FunctionReference* ctor;
  static Napi::Function Init(Napi::Env env) {
    Napi::Function f = DefineClass(env, "NativeIvfRabitqIndex",
                                   {
                                       InstanceMethod("search", &Index::Search),
                                       InstanceMethod("searchBatch", &Index::SearchBatch),
                                       InstanceMethod("estimateAll", &Index::EstimateAll),
                                       InstanceMethod("info", &Index::Info),
                                       InstanceMethod("size", &Index::Size),
                                       InstanceMethod("centroids", &Index::Centroids),
                                       InstanceMethod("add", &Index::Add),
                                       InstanceMethod("remove", &Index::Remove),
                                       InstanceMethod("contains", &Index::Contains),
                                       InstanceMethod("compact", &Index::Compact),
                                       InstanceMethod("save", &Index::Save),
                                       InstanceMethod("toBuffer", &Index::ToBuffer),
                                       InstanceMethod("verify", &Index::Verify),
                                   });
    ctor = new Napi::FunctionReference(Napi::Persistent(f));
    return f;
  }
  Index(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Index>(info) {}
  std::shared_ptr<rabitq::IvfRabitqIndex> index;

 private:
  static rabitq::SearchParams params_from(const Napi::Object& o) {
    rabitq::SearchParams sp;
    sp.k = o.Get("k").As<Napi::Number>().Uint32Value();
    sp.nprobe = o.Get("nprobe").As<Napi::Number>().Uint32Value();
    sp.rerank = o.Get("rerank").ToBoolean();
    sp.epsilon = o.Get("epsilon").As<Napi::Number>().FloatValue();
    sp.bitplane = o.Get("bitplane").ToBoolean();
    return sp;
  }
  static void stats_out(const rabitq::SearchStats& st, double* out) {
    out[0] = static_cast<double>(st.queries);
    out[1] = static_cast<double>(st.clusters_probed);
    out[2] = static_cast<double>(st.codes_scanned);
    out[3] = static_cast<double>(st.reranked);
    out[4] = static_cast<double>(st.candidates);
  }

  // search(query, k, nprobe, rerank, epsilon, bitplane, idsOut, distsOut, statsOut|null, filterKind, filter)
  // Positional arguments: this is the latency-critical path.
  Napi::Value Search(const Napi::CallbackInfo& info) {
    GUARD_BEGIN
    rabitq::SearchParams sp;
    sp.k = info[1].As<Napi::Number>().Uint32Value();
    sp.nprobe = info[2].As<Napi::Number>().Uint32Value();
    sp.rerank = info[3].As<Napi::Boolean>().Value();
    sp.epsilon = info[4].As<Napi::Number>().FloatValue();
    sp.bitplane = info[5].As<Napi::Boolean>().Value();
    rabitq::Filter filter;
    if (info.Length() > 10 && filter_from(info[9], info[10], &filter)) sp.filter = &filter;
    rabitq::SearchStats st;
    const bool want_stats = info[8].IsTypedArray();
    IdsOut out = ids_out(info[6]);
    float* dists = data_of<float>(info[7]);
    if (out.i64) {
      index->search(data_of<float>(info[0]), sp, out.i64, dists, want_stats ? &st : nullptr);
    } else {
      thread_local std::vector<int64_t> ids64;
      if (ids64.size() < sp.k) ids64.resize(sp.k);
      index->search(data_of<float>(info[0]), sp, ids64.data(), dists, want_stats ? &st : nullptr);
      for (size_t i = 0; i < sp.k; ++i) out.i32[i] = static_cast<int32_t>(ids64[i]);
    }
    if (want_stats) stats_out(st, data_of<double>(info[8]));
    GUARD_END(info.Env())
    return info.Env().Undefined();
  }

  class BatchWorker : public PromiseWorker {
   public:
    BatchWorker(const Napi::CallbackInfo& info, std::shared_ptr<rabitq::IvfRabitqIndex> idx)
        : PromiseWorker(info.Env()), idx_(std::move(idx)) {
      // The caller's queries and filter are copied: they could be transferred
      // (detached) or changed while the batch runs. The outputs are arrays
      // the TypeScript layer made for this call and hands out only after it.
      const float* q = data_of<float>(info[0]);
      queries_.assign(q, q + length_of(info[0]));
      nq_ = length_of(info[0]) / idx_->dim();
      sp_ = params_from(info[1].As<Napi::Object>());
      threads_ = info[1].As<Napi::Object>().Get("threads").As<Napi::Number>().Uint32Value();
      ids_ = ids_out(info[2]);
      dists_ = data_of<float>(info[3]);
      if (info.Length() > 6 && filter_from(info[5], info[6], &filter_)) {
        const auto ta = info[6].As<Napi::TypedArray>();
        const uint8_t* bytes = data_of<uint8_t>(info[6]);
        filter_bytes_.assign(bytes, bytes + ta.ByteLength());
        if (filter_.bits) filter_.bits = filter_bytes_.data();
        if (filter_.sorted32) filter_.sorted32 = reinterpret_cast<const uint32_t*>(filter_bytes_.data());
        if (filter_.sorted64) filter_.sorted64 = reinterpret_cast<const uint64_t*>(filter_bytes_.data());
        sp_.filter = &filter_;
      }
      if (info[4].IsTypedArray()) {
        stats_ = data_of<double>(info[4]);
        per_query_.resize(nq_);
        Pin(info[4]);
      }
      Pin(info[2]);
      Pin(info[3]);
      Pin(info.This());
    }
    void Run() override {
      rabitq::SearchStats total;
      std::vector<int64_t> wide;
      int64_t* ids = ids_.i64;
      if (ids == nullptr) {
        wide.resize(nq_ * sp_.k);
        ids = wide.data();
      }
      idx_->search_batch(queries_.data(), nq_, sp_, ids, dists_, &total, per_query_.empty() ? nullptr : per_query_.data(),
                         rabitq::ThreadPool::global(), threads_);
      if (ids_.i32)
        for (size_t i = 0; i < wide.size(); ++i) ids_.i32[i] = static_cast<int32_t>(wide[i]);
      total_ = total;
    }
    void OnOK() override {
      // stats layout: 5 totals, then 5 per query.
      if (stats_) {
        stats_out(total_, stats_);
        for (size_t q = 0; q < nq_; ++q) stats_out(per_query_[q], stats_ + 5 + q * 5);
      }
      deferred_.Resolve(Env().Undefined());
    }

   private:
    std::shared_ptr<rabitq::IvfRabitqIndex> idx_;
    std::vector<float> queries_;
    std::vector<uint8_t> filter_bytes_;  // a std::vector's buffer is aligned for uint64_t
    size_t nq_, threads_ = 0;
    rabitq::SearchParams sp_;
    rabitq::Filter filter_;
    IdsOut ids_;
    float* dists_;
    double* stats_ = nullptr;
    std::vector<rabitq::SearchStats> per_query_;
    rabitq::SearchStats total_;
  };

  // searchBatch(queries, {k,nprobe,rerank,epsilon,bitplane,threads}, idsOut, distsOut, statsOut|null, filterKind, filter)
  Napi::Value SearchBatch(const Napi::CallbackInfo& info) {
    auto* w = new BatchWorker(info, index);
    auto p = w->Promise();
    w->Queue();
    return p;
  }

  // estimateAll(query, estOut, boundOut, bitplane)
  Napi::Value EstimateAll(const Napi::CallbackInfo& info) {
    GUARD_BEGIN
    index->estimate_all(data_of<float>(info[0]), data_of<float>(info[1]), data_of<float>(info[2]),
                        info[3].ToBoolean(), length_of(info[1]));
    GUARD_END(info.Env())
    return info.Env().Undefined();
  }

  Napi::Value Size(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(index->size()));
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto o = Napi::Object::New(env);
    o.Set("dim", static_cast<double>(index->dim()));
    o.Set("paddedDim", static_cast<double>(index->padded_dim()));
    o.Set("size", static_cast<double>(index->size()));
    o.Set("numClusters", static_cast<double>(index->num_clusters()));
    static const char* metrics[] = {"l2", "cosine", "ip"};
    o.Set("metric", metrics[static_cast<int>(index->metric())]);
    o.Set("idType", index->ids64() ? "u64" : "u32");
    o.Set("storeVectors", index->has_vectors());
    o.Set("rotation", index->rotation_kind() == rabitq::RotationKind::kDense ? "dense" : "fht");
    auto m = index->memory_usage();
    auto mo = Napi::Object::New(env);
    mo.Set("codes", static_cast<double>(m.codes));
    mo.Set("factors", static_cast<double>(m.factors));
    mo.Set("ids", static_cast<double>(m.ids));
    mo.Set("vectors", static_cast<double>(m.vectors));
    mo.Set("centroids", static_cast<double>(m.centroids));
    mo.Set("other", static_cast<double>(m.other));
    mo.Set("total", static_cast<double>(m.total()));
    mo.Set("mapped", static_cast<double>(m.mapped));
    o.Set("memory", mo);
    auto t = index->timings();
    auto to = Napi::Object::New(env);
    to.Set("trainMs", t.train_ms);
    to.Set("assignMs", t.assign_ms);
    to.Set("encodeMs", t.encode_ms);
    o.Set("timings", to);
    return o;
  }

  // Runs `run` on a libuv worker with this object and `pins` kept alive;
  // `done` (on the JS thread) makes the resolved value, undefined without it.
  static Napi::Value on_worker(const Napi::CallbackInfo& info, std::function<void()> run,
                               std::function<Napi::Value(Napi::Env)> done = nullptr,
                               const std::vector<Napi::Value>& pins = {}) {
    auto* w = new LambdaWorker(info.Env(), std::move(run), std::move(done));
    for (const auto& v : pins) w->Pin(v);
    w->Pin(info.This());
    return queue(w);
  }

  // add(vectors, ids: Uint32Array|BigUint64Array|undefined, threads): Promise<void>
  Napi::Value Add(const Napi::CallbackInfo& info) {
    auto idx = index;
    const float* data = data_of<float>(info[0]);
    const size_t len = length_of(info[0]);
    const size_t n = len / idx->dim();
    // TypeScript checked the lengths when add() was called, but the call runs
    // later (queued behind earlier changes): a buffer detached or shrunk
    // meanwhile reads as empty here, and null ids would mean default ids.
    if (n == 0 || len % idx->dim() != 0 || (info[1].IsTypedArray() && length_of(info[1]) != n))
      throw Napi::TypeError::New(info.Env(), "add: vectors or ids changed length (detached or resized) before the add ran");
    const uint32_t* ids32;
    const uint64_t* ids64;
    ids_in(info[1], &ids32, &ids64);
    const size_t threads = info[2].As<Napi::Number>().Uint32Value();
    std::vector<Napi::Value> pins{info[0]};
    if (info[1].IsTypedArray()) pins.push_back(info[1]);
    return on_worker(info, [=] { idx->add(data, n, ids32, ids64, rabitq::ThreadPool::global(), threads); }, nullptr,
                     pins);
  }
  // remove(ids: BigUint64Array): Promise<number>
  Napi::Value Remove(const Napi::CallbackInfo& info) {
    auto idx = index;
    const uint64_t* ids = data_of<uint64_t>(info[0]);
    const size_t n = length_of(info[0]);
    auto removed = std::make_shared<size_t>(0);
    return on_worker(
        info, [=] { *removed = idx->remove(ids, n); },
        [=](Napi::Env env) { return Napi::Number::New(env, static_cast<double>(*removed)); }, {info[0]});
  }
  // contains(id: bigint): boolean
  Napi::Value Contains(const Napi::CallbackInfo& info) {
    bool lossless;
    const uint64_t id = info[0].As<Napi::BigInt>().Uint64Value(&lossless);
    bool found = false;
    GUARD_BEGIN
    found = lossless && index->contains(id);
    GUARD_END(info.Env())
    return Napi::Boolean::New(info.Env(), found);
  }
  Napi::Value Compact(const Napi::CallbackInfo& info) {
    auto idx = index;
    return on_worker(info, [=] { idx->compact(); });
  }
  // save(path): Promise<void>
  Napi::Value Save(const Napi::CallbackInfo& info) {
    auto idx = index;
    std::string path = info[0].As<Napi::String>().Utf8Value();
    return on_worker(info, [=] { idx->save(path); });
  }
  // toBuffer(): Promise<Buffer>
  Napi::Value ToBuffer(const Napi::CallbackInfo& info) {
    auto idx = index;
    auto bytes = std::make_shared<std::vector<uint8_t>>();
    return on_worker(info, [=] { *bytes = idx->to_bytes(); }, [=](Napi::Env env) -> Napi::Value {
      // The Buffer owns the vector's memory: no second copy.
      auto* held = new std::vector<uint8_t>(std::move(*bytes));
      return Napi::Buffer<uint8_t>::New(env, held->data(), held->size(),
                                        [](Napi::Env, uint8_t*, std::vector<uint8_t>* v) { delete v; }, held);
    });
  }
  Napi::Value Verify(const Napi::CallbackInfo& info) {
    auto idx = index;
    return on_worker(info, [=] { idx->verify(); });
  }

  Napi::Value Centroids(const Napi::CallbackInfo& info) {
    const auto& c = index->centroids();
    auto arr = Napi::Float32Array::New(info.Env(), c.size());
    std::copy(c.begin(), c.end(), arr.Data());
    return arr;
  }
};
Napi::FunctionReference* Index::ctor = nullptr;

struct ProgressEvent {
  int phase;
  double done, total;
};

class BuildWorker : public PromiseWorker {
 public:
  BuildWorker(const Napi::CallbackInfo& info) : PromiseWorker(info.Env()) {
    Napi::Object o = info[1].As<Napi::Object>();
    data_ = data_of<float>(info[0]);
    params_.dim = o.Get("dim").As<Napi::Number>().Uint32Value();
    n_ = length_of(info[0]) / params_.dim;
    params_.num_clusters = o.Get("numClusters").As<Napi::Number>().Uint32Value();
    params_.kmeans_iterations = o.Get("kmeansIterations").As<Napi::Number>().Uint32Value();
    params_.train_points_per_cluster = o.Get("trainPointsPerCluster").As<Napi::Number>().Uint32Value();
    params_.seed = static_cast<uint64_t>(o.Get("seed").As<Napi::Number>().Int64Value());
    params_.rotation = o.Get("rotation").As<Napi::String>().Utf8Value() == "dense" ? rabitq::RotationKind::kDense
                                                                                   : rabitq::RotationKind::kFht;
    params_.threads = o.Get("threads").As<Napi::Number>().Uint32Value();
    const std::string metric = o.Get("metric").As<Napi::String>().Utf8Value();
    params_.metric = metric == "cosine" ? rabitq::Metric::kCosine
                     : metric == "ip"   ? rabitq::Metric::kInnerProduct
                                        : rabitq::Metric::kL2;
    params_.store_vectors = o.Get("storeVectors").ToBoolean();
    Napi::Value ids = o.Get("ids");
    ids_in(ids, &params_.ids32, &params_.ids64);
    if (ids.IsTypedArray()) Pin(ids);
    Pin(info[0]);
    if (info[2].IsFunction()) {
      tsfn_ = Napi::ThreadSafeFunction::New(info.Env(), info[2].As<Napi::Function>(), "rabitq-build-progress", 0, 1);
      has_progress_ = true;
      params_.progress = [this](int phase, size_t done, size_t total) {
        // Non-blocking: a full queue drops the event rather than stall a worker.
        auto* ev = new ProgressEvent{phase, double(done), double(total)};
        napi_status s = tsfn_.NonBlockingCall(ev, [](Napi::Env env, Napi::Function cb, ProgressEvent* e) {
          static const char* names[] = {"train", "assign", "encode"};
          auto o = Napi::Object::New(env);
          o.Set("phase", names[e->phase]);
          o.Set("done", e->done);
          o.Set("total", e->total);
          delete e;
          try {
            cb.Call({o});
          } catch (...) {
            // A throwing progress callback must not break the build.
          }
        });
        if (s != napi_ok) delete ev;
      };
    }
  }
  void Run() override { index_ = rabitq::IvfRabitqIndex::build(data_, n_, params_, rabitq::ThreadPool::global()); }
  void Finish() override {
    if (has_progress_) {
      tsfn_.Release();
      has_progress_ = false;
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    Finish();
    Napi::Object obj = Index::ctor->New({});
    Index::Unwrap(obj)->index = std::shared_ptr<rabitq::IvfRabitqIndex>(index_.release());
    deferred_.Resolve(obj);
    (void)env;
  }

 private:
  const float* data_;
  size_t n_;
  rabitq::BuildParams params_;
  std::unique_ptr<rabitq::IvfRabitqIndex> index_;
  Napi::ThreadSafeFunction tsfn_;
  bool has_progress_ = false;
};

// buildIndex(vectors, params, onProgress|undefined): Promise<NativeIvfRabitqIndex>
Napi::Value BuildIndex(const Napi::CallbackInfo& info) {
  auto* w = new BuildWorker(info);
  auto p = w->Promise();
  w->Queue();
  return p;
}

Napi::Value wrap_index(Napi::Env env, std::unique_ptr<rabitq::IvfRabitqIndex>& made) {
  Napi::Object obj = Index::ctor->New({});
  Index::Unwrap(obj)->index = std::shared_ptr<rabitq::IvfRabitqIndex>(made.release());
  return obj;
}

// loadIndex(path, mmap, verify): Promise<NativeIvfRabitqIndex>
Napi::Value LoadIndex(const Napi::CallbackInfo& info) {
  std::string path = info[0].As<Napi::String>().Utf8Value();
  const bool mmap = info[1].ToBoolean(), verify = info[2].ToBoolean();
  auto made = std::make_shared<std::unique_ptr<rabitq::IvfRabitqIndex>>();
  auto* w = new LambdaWorker(
      info.Env(),
      [=] {
        auto blob = mmap ? rabitq::persist::Blob::map_file(path) : rabitq::persist::Blob::read_file(path);
        *made = rabitq::IvfRabitqIndex::load(blob, path, /*lazy=*/mmap && !verify);
      },
      [=](Napi::Env env) { return wrap_index(env, *made); });
  return queue(w);
}

// indexFromBuffer(bytes: Uint8Array): Promise<NativeIvfRabitqIndex>; the bytes are copied once.
Napi::Value IndexFromBuffer(const Napi::CallbackInfo& info) {
  const uint8_t* data = data_of<uint8_t>(info[0]);
  const size_t n = length_of(info[0]);
  auto made = std::make_shared<std::unique_ptr<rabitq::IvfRabitqIndex>>();
  auto* w = new LambdaWorker(
      info.Env(),
      [=] { *made = rabitq::IvfRabitqIndex::load(rabitq::persist::Blob::copy_of(data, n), "buffer", false); },
      [=](Napi::Env env) { return wrap_index(env, *made); });
  w->Pin(info[0]);
  return queue(w);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // Resolve the SIMD level now so a bad RABITQ_SIMD fails the require with a
  // clear message instead of failing later (or crashing) inside a kernel.
  try {
    rabitq::active_kernels();
  } catch (const rabitq::Error& e) {
    throw to_js_error(env, e);
  }
  exports.Set("simdLevel", Napi::Function::New(env, SimdLevel));
  exports.Set("detectedLevel", Napi::Function::New(env, DetectedLevel));
  exports.Set("setSimdLevel", Napi::Function::New(env, SetSimdLevel));
  exports.Set("poolInfo", Napi::Function::New(env, PoolInfo));
  exports.Set("exactKnn", Napi::Function::New(env, ExactKnn));
  exports.Set("buildIndex", Napi::Function::New(env, BuildIndex));
  exports.Set("loadIndex", Napi::Function::New(env, LoadIndex));
  exports.Set("indexFromBuffer", Napi::Function::New(env, IndexFromBuffer));
  exports.Set("NativeIvfRabitqIndex", Index::Init(env));
  auto k = Napi::Object::New(env);
  k.Set("l2sq", Napi::Function::New(env, KernelL2sq));
  k.Set("dot", Napi::Function::New(env, KernelDot));
  k.Set("minmax", Napi::Function::New(env, KernelMinmax));
  k.Set("quantize", Napi::Function::New(env, KernelQuantize));
  k.Set("popcountAnd", Napi::Function::New(env, KernelPopcountAnd));
  k.Set("bitplaneIp", Napi::Function::New(env, KernelBitplaneIp));
  k.Set("fastscan", Napi::Function::New(env, KernelFastscan));
  k.Set("estimate", Napi::Function::New(env, KernelEstimate));
  k.Set("dotTile16", Napi::Function::New(env, KernelDotTile16));
  k.Set("dotTile16F16", Napi::Function::New(env, KernelDotTile16F16));
  k.Set("floatToHalf", Napi::Function::New(env, KernelFloatToHalf));
  exports.Set("kernels", k);
  return exports;
}

}  // namespace

NODE_API_MODULE(rabitq, Init)
