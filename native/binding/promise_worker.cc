#include "promise_worker.h"

namespace rabitq::binding {

PromiseWorker::PromiseWorker(Napi::Env env, const char* resource_name)
    : Napi::AsyncWorker(env, resource_name), deferred_(Napi::Promise::Deferred::New(env)) {}

Napi::Value PromiseWorker::Start(std::unique_ptr<PromiseWorker> worker) {
  Napi::Promise promise = worker->deferred_.Promise();
  worker->Queue();
  worker.release();  // deleted by OnWorkComplete
  return promise;
}

void PromiseWorker::Pin(const Napi::Value& v) { pins_.emplace_back(Napi::Persistent(v.As<Napi::Object>())); }

void PromiseWorker::Execute() {
  try {
    Run();
  } catch (...) {
    failure_ = current_failure();
  }
}

void PromiseWorker::Settle(Napi::Env env) {
  Napi::HandleScope scope(env);
  try {
    if (failure_) {
      deferred_.Reject(to_js_error(env, *failure_).Value());
    } else {
      deferred_.Resolve(Result(env));
    }
  } catch (...) {
    // Making the result failed (out of memory, or an environment that can no
    // longer run JavaScript): reject with that error if we still can.
    NativeFailure f = current_failure();
    try {
      deferred_.Reject(to_js_error(env, f).Value());
    } catch (...) {
    }
  }
}

void PromiseWorker::OnWorkComplete(Napi::Env env, napi_status status) {
  // Nothing may throw out of here: this is called by N-API, also while the
  // environment is being torn down.
  try {
    Napi::HandleScope scope(env);
    Finish();
  } catch (...) {
  }
  if (status != napi_cancelled) {
    try {
      Settle(env);
    } catch (...) {
    }
  }
  try {
    Destroy();
  } catch (...) {
  }
}

}  // namespace rabitq::binding
