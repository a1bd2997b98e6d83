// The module: one Addon per Node environment (the main thread and each
// worker_threads Worker that loads the package get their own), kept as the
// environment's instance data and deleted with it. It holds what used to be
// process-wide: the NativeIvfRabitqIndex constructor.
//
// Process-wide on purpose, shared by every environment: the native thread
// pool (ThreadPool::global(), pure C++, never touches a JS value) and the
// active SIMD level (setSimdLevel changes it for every thread).
#pragma once
#include <napi.h>

#include <memory>

#include "../core/ivf_index.h"

namespace rabitq::binding {

class Addon : public Napi::Addon<Addon> {
 public:
  Addon(Napi::Env env, Napi::Object exports);
  // This environment's Addon.
  static Addon& Of(Napi::Env env) { return *env.GetInstanceData<Addon>(); }
  // A new NativeIvfRabitqIndex owning `index`.
  Napi::Object NewIndex(Napi::Env env, std::unique_ptr<IvfRabitqIndex> index);

 private:
  Napi::Value SimdLevel(const Napi::CallbackInfo& info);
  Napi::Value DetectedLevel(const Napi::CallbackInfo& info);
  Napi::Value SetSimdLevel(const Napi::CallbackInfo& info);
  Napi::Value PoolInfo(const Napi::CallbackInfo& info);
  Napi::Value ExactKnn(const Napi::CallbackInfo& info);
  Napi::Value BuildIndex(const Napi::CallbackInfo& info);
  Napi::Value LoadIndex(const Napi::CallbackInfo& info);
  Napi::Value IndexFromBuffer(const Napi::CallbackInfo& info);

  Napi::FunctionReference index_constructor_;
};

}  // namespace rabitq::binding
