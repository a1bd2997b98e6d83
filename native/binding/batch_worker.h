// searchBatch: many queries on the native pool.
#pragma once
#include <napi.h>

#include <memory>
#include <vector>

#include "../core/ivf_index.h"
#include "args.h"
#include "promise_worker.h"

namespace rabitq::binding {

class BatchWorker : public PromiseWorker {
 public:
  // Checks the arguments (TypeError / RangeError), queues the batch, returns its Promise.
  static Napi::Value Start(const Napi::CallbackInfo& info, std::shared_ptr<IvfRabitqIndex> index);

 private:
  BatchWorker(Napi::Env env, std::shared_ptr<IvfRabitqIndex> index);
  void Run() override;
  Napi::Value Result(Napi::Env env) override;

  std::shared_ptr<IvfRabitqIndex> index_;
  // The caller's queries and filter are copied: they could be transferred
  // (detached) or changed while the batch runs. The outputs are arrays the
  // TypeScript layer made for this call and hands out only after it; they
  // are pinned until the worker is deleted.
  std::vector<float> queries_;
  std::vector<uint64_t> filter_words_;  // the filter's bytes, 8-byte aligned
  size_t nq_ = 0, threads_ = 0;
  SearchParams sp_;
  Filter filter_;
  IdsOut ids_;
  float* dists_ = nullptr;
  double* stats_ = nullptr;
  std::vector<SearchStats> per_query_;
  SearchStats total_;
};

}  // namespace rabitq::binding
