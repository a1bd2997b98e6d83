// Base of every async method: runs Run() on a libuv thread (pure C++, never a
// JS value) and settles a Promise on the JS thread.
//
// Worker threads and environment teardown: the inputs a worker borrows (typed
// arrays, the index object) are pinned with references until the worker is
// deleted, which happens only after Run() has returned. When the environment
// goes away (a worker_threads Worker terminated, the process exiting) while
// Run() is in flight, Node waits for it to return and then calls the
// completion on an environment that can no longer run JavaScript: settling the
// Promise fails there, and that failure is swallowed (nobody can observe the
// Promise any more) instead of escaping into N-API, which would abort.
#pragma once
#include <napi.h>

#include <memory>
#include <optional>
#include <vector>

#include "errors.h"

namespace rabitq::binding {

class PromiseWorker : public Napi::AsyncWorker {
 public:
  // Queues the worker (which then owns itself) and returns its Promise.
  static Napi::Value Start(std::unique_ptr<PromiseWorker> worker);

  // Keeps a JS object (a typed array, the index wrapper) alive until the
  // worker is deleted.
  void Pin(const Napi::Value& v);

 protected:
  PromiseWorker(Napi::Env env, const char* resource_name);

  // libuv thread: the work. Exceptions become the rejection (errors.h).
  virtual void Run() = 0;
  // JS thread, on success: the value the Promise resolves with.
  virtual Napi::Value Result(Napi::Env env) { return env.Undefined(); }
  // JS thread, always, before settling (also on teardown): release what
  // must be released on the JS thread.
  virtual void Finish() {}

 private:
  void Execute() final;
  void OnWorkComplete(Napi::Env env, napi_status status) final;
  void Settle(Napi::Env env);

  Napi::Promise::Deferred deferred_;
  std::vector<Napi::ObjectReference> pins_;
  std::optional<NativeFailure> failure_;
};

}  // namespace rabitq::binding
