// buildIndex: k-means, rotation and encoding on the native pool, with build
// progress sent to an optional JS callback through a thread-safe function.
#pragma once
#include <napi.h>

#include <memory>
#include <vector>

#include "../core/huge_pages.h"
#include "../core/ivf_index.h"
#include "promise_worker.h"

namespace rabitq::binding {

class BuildWorker : public PromiseWorker {
 public:
  // buildIndex(vectors, params, onProgress|undefined): checks, queues, returns the Promise.
  static Napi::Value Start(const Napi::CallbackInfo& info);
  ~BuildWorker() override { BuildWorker::Finish(); }  // also when queueing failed

  struct ProgressEvent {
    int phase;
    double done, total;
  };
  static void CallProgress(Napi::Env env, Napi::Function callback, std::nullptr_t* context, ProgressEvent* event);
  using ProgressFunction = Napi::TypedThreadSafeFunction<std::nullptr_t, ProgressEvent, CallProgress>;

 private:
  explicit BuildWorker(Napi::Env env);
  void Run() override;
  Napi::Value Result(Napi::Env env) override;
  void Finish() override;

  // Copies of the caller's vectors and ids, made on the JS thread before the
  // work is queued (see Start).
  HugeVector<float> vectors_;
  std::vector<uint32_t> ids32_;
  std::vector<uint64_t> ids64_;
  size_t n_ = 0;
  BuildParams params_;
  std::unique_ptr<IvfRabitqIndex> index_;
  ProgressFunction progress_;
  bool has_progress_ = false;
};

}  // namespace rabitq::binding
