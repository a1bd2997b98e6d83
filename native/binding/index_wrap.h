// NativeIvfRabitqIndex: the JS object around one core index. Made only by
// buildIndex / loadIndex / indexFromBuffer (Addon::NewIndex); calling the
// constructor from JS is a TypeError.
#pragma once
#include <napi.h>

#include <memory>

#include "../core/ivf_index.h"

namespace rabitq::binding {

class IndexWrap : public Napi::ObjectWrap<IndexWrap> {
 public:
  // The class, defined once per environment (kept by the Addon).
  static Napi::Function Define(Napi::Env env);
  // info[0]: a Napi::External carrying the std::unique_ptr<IvfRabitqIndex>* to take.
  explicit IndexWrap(const Napi::CallbackInfo& info);

 private:
  Napi::Value Search(const Napi::CallbackInfo& info);
  Napi::Value SearchBatch(const Napi::CallbackInfo& info);
  Napi::Value EstimateAll(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Size(const Napi::CallbackInfo& info);
  Napi::Value Centroids(const Napi::CallbackInfo& info);
  Napi::Value Add(const Napi::CallbackInfo& info);
  Napi::Value Remove(const Napi::CallbackInfo& info);
  Napi::Value Contains(const Napi::CallbackInfo& info);
  Napi::Value Compact(const Napi::CallbackInfo& info);
  Napi::Value Save(const Napi::CallbackInfo& info);
  Napi::Value ToBuffer(const Napi::CallbackInfo& info);
  Napi::Value Verify(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  // The index, or a JS Error with code 'ECLOSED' after close().
  std::shared_ptr<IvfRabitqIndex> live(Napi::Env env) const;

  // Shared with every async call in flight, so a call outlives a wrapper
  // that is collected (or an environment that is torn down, or closed)
  // meanwhile. Null after close().
  std::shared_ptr<IvfRabitqIndex> index_;
};

}  // namespace rabitq::binding
