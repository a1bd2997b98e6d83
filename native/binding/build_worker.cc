#include "build_worker.h"

#include <string>

#include "addon.h"
#include "args.h"

namespace rabitq::binding {

BuildWorker::BuildWorker(Napi::Env env) : PromiseWorker(env, "rabitq:build") {}

Napi::Value BuildWorker::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Span<float> vectors = array_arg<float>(env, info[0], "vectors", 1);
  const Napi::Object o = object_arg(env, info[1], "params");
  BuildParams p;
  p.dim = uint32_arg(env, o.Get("dim"), "params.dim");
  if (p.dim == 0) throw_range_error(env, "params.dim must be >= 1");
  if (vectors.size % p.dim != 0)
    throw_type_error(env, "vectors.length (" + std::to_string(vectors.size) + ") must be a multiple of params.dim (" +
                              std::to_string(p.dim) + ")");
  const size_t n = vectors.size / p.dim;
  p.num_clusters = uint32_arg(env, o.Get("numClusters"), "params.numClusters");
  p.kmeans_iterations = uint32_arg(env, o.Get("kmeansIterations"), "params.kmeansIterations");
  p.train_points_per_cluster = uint32_arg(env, o.Get("trainPointsPerCluster"), "params.trainPointsPerCluster");
  const double seed = number_arg(env, o.Get("seed"), "params.seed");
  if (!(seed >= 0 && seed <= 9007199254740991.0)) throw_range_error(env, "params.seed must be an integer in 0..2^53-1");
  p.seed = static_cast<uint64_t>(seed);
  const std::string rotation = string_arg(env, o.Get("rotation"), "params.rotation");
  if (rotation != "fht" && rotation != "dense")
    throw_range_error(env, "params.rotation must be 'fht' or 'dense', got '" + rotation + "'");
  p.rotation = rotation == "dense" ? RotationKind::kDense : RotationKind::kFht;
  p.threads = uint32_arg(env, o.Get("threads"), "params.threads");
  const std::string metric = string_arg(env, o.Get("metric"), "params.metric");
  if (metric != "l2" && metric != "cosine" && metric != "ip")
    throw_range_error(env, "params.metric must be 'l2', 'cosine' or 'ip', got '" + metric + "'");
  p.metric = metric == "cosine" ? Metric::kCosine : metric == "ip" ? Metric::kInnerProduct : Metric::kL2;
  p.store_vectors = bool_arg(env, o.Get("storeVectors"), "params.storeVectors");
  p.bits = uint32_arg(env, o.Get("bits"), "params.bits");
  if (p.bits < 1 || p.bits > 9)
    throw_range_error(env, "params.bits must be an integer in 1..9, got " + std::to_string(p.bits));
  const Napi::Value ids_value = o.Get("ids");
  const IdsIn ids = ids_in_arg(env, ids_value, "params.ids", n);
  p.ids32 = ids.ids32;
  p.ids64 = ids.ids64;
  const Napi::Value on_progress = info[2];
  const bool has_progress = on_progress.IsFunction();
  if (!has_progress && !is_nullish(env, on_progress))
    throw_wrong_type(env, "onProgress", "a function or undefined", on_progress);

  std::unique_ptr<BuildWorker> w(new BuildWorker(env));
  // Copied here, on the JS thread, not borrowed: a reference keeps the
  // typed array alive but not its memory, which the caller can transfer
  // (postMessage, structuredClone), let be collected, or shrink (a resizable
  // ArrayBuffer) while the build runs; reading it then crashed the process.
  // The cost is a second copy of the input (4 * n * dim bytes) for the length
  // of the build, next to the index it makes (which holds another copy when
  // storeVectors is set), and one copy on the JS thread. On huge pages when
  // large (huge_pages.h): the time then goes to the copy, not to 4 KiB page
  // faults, which made it several times slower.
  w->vectors_.assign(vectors.data, vectors.data + vectors.size);
  if (ids.ids32) w->ids32_.assign(ids.ids32, ids.ids32 + n);
  if (ids.ids64) w->ids64_.assign(ids.ids64, ids.ids64 + n);
  p.ids32 = ids.ids32 ? w->ids32_.data() : nullptr;
  p.ids64 = ids.ids64 ? w->ids64_.data() : nullptr;
  w->n_ = n;
  w->params_ = p;
  if (has_progress) {
    w->progress_ = ProgressFunction::New(env, on_progress.As<Napi::Function>(), "rabitq:buildProgress", 0, 1);
    w->has_progress_ = true;
    ProgressFunction tsfn = w->progress_;
    w->params_.progress = [tsfn](int phase, size_t done, size_t total) mutable {
      // Non-blocking: a full queue drops the event rather than stall a worker.
      auto* ev = new ProgressEvent{phase, double(done), double(total)};
      if (tsfn.NonBlockingCall(ev) != napi_ok) delete ev;
    };
  }
  return PromiseWorker::Start(std::move(w));
}

// JS thread. Called with a null env when the function is torn down with
// events still queued: then only the event is freed. Nothing may throw out.
void BuildWorker::CallProgress(Napi::Env env, Napi::Function callback, std::nullptr_t*, ProgressEvent* event) {
  std::unique_ptr<ProgressEvent> ev(event);
  if (env == nullptr || callback.IsEmpty() || ev == nullptr) return;
  try {
    static const char* const names[] = {"train", "assign", "encode"};
    auto o = Napi::Object::New(env);
    o.Set("phase", names[ev->phase]);
    o.Set("done", ev->done);
    o.Set("total", ev->total);
    callback.Call({o});
  } catch (...) {
    // A throwing progress callback (or an environment shutting down) must
    // not break the build.
  }
}

void BuildWorker::Run() {
  index_ = IvfRabitqIndex::build(vectors_.data(), n_, params_, ThreadPool::global());
  // The index holds what it needs: give the copy back before the Promise settles.
  HugeVector<float>().swap(vectors_);
}

void BuildWorker::Finish() {
  // The build has returned: no progress call can come any more.
  if (has_progress_) {
    has_progress_ = false;
    progress_.Release();
  }
}

Napi::Value BuildWorker::Result(Napi::Env env) { return Addon::Of(env).NewIndex(env, std::move(index_)); }

}  // namespace rabitq::binding
