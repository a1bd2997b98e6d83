#include "batch_worker.h"

#include <cstring>
#include <string>

#include "search_args.h"

namespace rabitq::binding {

BatchWorker::BatchWorker(Napi::Env env, std::shared_ptr<IvfRabitqIndex> index)
    : PromiseWorker(env, "rabitq:searchBatch"), index_(std::move(index)) {}

Napi::Value BatchWorker::Start(const Napi::CallbackInfo& info, std::shared_ptr<IvfRabitqIndex> index) {
  Napi::Env env = info.Env();
  const size_t dim = index->dim();
  const Span<float> queries = array_arg<float>(env, info[0], "queries", dim);
  if (queries.size % dim != 0)
    throw_type_error(env, "queries.length (" + std::to_string(queries.size) + ") must be a multiple of dim (" +
                              std::to_string(dim) + ")");
  const size_t nq = queries.size / dim;
  const Napi::Object params = object_arg(env, info[1], "params");
  const SearchParams sp = search_params_from(env, params);
  const size_t threads = uint32_arg(env, params.Get("threads"), "params.threads");
  const size_t results = nq * sp.k;
  const IdsOut ids = ids_out_arg(env, info[2], "ids", results);
  float* dists = array_arg<float>(env, info[3], "dists", results).data;
  double* stats = optional_array_arg<double>(env, info[4], "stats", kStatsFields * (1 + nq)).data;
  const FilterArg filter = filter_arg(info, 5, 6);

  std::unique_ptr<BatchWorker> w(new BatchWorker(env, std::move(index)));
  w->queries_.assign(queries.data, queries.data + queries.size);
  w->nq_ = nq;
  w->sp_ = sp;
  w->threads_ = threads;
  w->ids_ = ids;
  w->dists_ = dists;
  if (filter.kind != 0) {
    static const size_t elem_bytes[] = {0, 1, 4, 8};
    const size_t bytes = filter.count * elem_bytes[filter.kind];
    w->filter_words_.resize((bytes + 7) / 8);
    if (bytes != 0) std::memcpy(w->filter_words_.data(), filter.data, bytes);
    FilterArg copy = filter;
    copy.data = w->filter_words_.data();
    if (to_filter(copy, &w->filter_)) w->sp_.filter = &w->filter_;
  }
  if (stats != nullptr) {
    w->stats_ = stats;
    w->per_query_.resize(nq);
    w->Pin(info[4]);
  }
  w->Pin(info[2]);
  w->Pin(info[3]);
  w->Pin(info.This());
  return PromiseWorker::Start(std::move(w));
}

void BatchWorker::Run() {
  SearchStats total;
  std::vector<int64_t> wide;
  int64_t* ids = ids_.i64;
  if (ids == nullptr) {
    wide.resize(nq_ * sp_.k);
    ids = wide.data();
  }
  index_->search_batch(queries_.data(), nq_, sp_, ids, dists_, &total, per_query_.empty() ? nullptr : per_query_.data(),
                       ThreadPool::global(), threads_);
  if (ids_.i32)
    for (size_t i = 0; i < wide.size(); ++i) ids_.i32[i] = static_cast<int32_t>(wide[i]);
  total_ = total;
}

Napi::Value BatchWorker::Result(Napi::Env env) {
  // stats layout: kStatsFields totals, then kStatsFields per query.
  if (stats_ != nullptr) {
    write_stats(total_, stats_);
    for (size_t q = 0; q < nq_; ++q) write_stats(per_query_[q], stats_ + kStatsFields * (1 + q));
  }
  return env.Undefined();
}

}  // namespace rabitq::binding
