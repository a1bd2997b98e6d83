// Search arguments shared by the synchronous search and the batch worker.
#pragma once
#include <napi.h>

#include "../core/ivf_index.h"
#include "args.h"

namespace rabitq::binding {

// {k, nprobe, rerank, epsilon, bitplane} of a searchBatch params object.
inline SearchParams search_params_from(Napi::Env env, const Napi::Object& o) {
  SearchParams sp;
  sp.k = uint32_arg(env, o.Get("k"), "params.k");
  sp.nprobe = uint32_arg(env, o.Get("nprobe"), "params.nprobe");
  sp.rerank = bool_arg(env, o.Get("rerank"), "params.rerank");
  sp.epsilon = static_cast<float>(number_arg(env, o.Get("epsilon"), "params.epsilon"));
  sp.bitplane = bool_arg(env, o.Get("bitplane"), "params.bitplane");
  return sp;
}

// The core's view of a filter argument (kind 0: none, returns false).
inline bool to_filter(const FilterArg& f, Filter* out) {
  switch (f.kind) {
    case 1:
      out->bits = static_cast<const uint8_t*>(f.data);
      out->nbits = f.count * 8;
      return true;
    case 2:
      out->sorted32 = static_cast<const uint32_t*>(f.data);
      out->count = f.count;
      return true;
    case 3:
      out->sorted64 = static_cast<const uint64_t*>(f.data);
      out->count = f.count;
      return true;
    default:
      return false;
  }
}

// stats layout: queries, clustersProbed, codesScanned, reranked, candidates, exEstimated.
constexpr size_t kStatsFields = 6;
inline void write_stats(const SearchStats& st, double* out) {
  out[0] = static_cast<double>(st.queries);
  out[1] = static_cast<double>(st.clusters_probed);
  out[2] = static_cast<double>(st.codes_scanned);
  out[3] = static_cast<double>(st.reranked);
  out[4] = static_cast<double>(st.candidates);
  out[5] = static_cast<double>(st.ex_estimated);
}

}  // namespace rabitq::binding
