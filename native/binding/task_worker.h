// A PromiseWorker made of two functions: `run` on a libuv thread, `result`
// (optional) on the JS thread for the resolved value. For the simple async
// methods (add, remove, compact, save, toBuffer, verify, load, exactKnn).
#pragma once
#include <functional>
#include <initializer_list>
#include <memory>
#include <utility>

#include "promise_worker.h"

namespace rabitq::binding {

class TaskWorker : public PromiseWorker {
 public:
  using RunFn = std::function<void()>;
  using ResultFn = std::function<Napi::Value(Napi::Env)>;

  // Queues run/result with `pins` kept alive until done; returns the Promise.
  static Napi::Value Start(Napi::Env env, const char* name, RunFn run, ResultFn result = nullptr,
                           std::initializer_list<Napi::Value> pins = {}) {
    std::unique_ptr<TaskWorker> w(new TaskWorker(env, name, std::move(run), std::move(result)));
    for (const auto& v : pins) w->Pin(v);
    return PromiseWorker::Start(std::move(w));
  }

 private:
  TaskWorker(Napi::Env env, const char* name, RunFn run, ResultFn result)
      : PromiseWorker(env, name), run_(std::move(run)), result_(std::move(result)) {}
  void Run() override { run_(); }
  Napi::Value Result(Napi::Env env) override { return result_ ? result_(env) : env.Undefined(); }

  RunFn run_;
  ResultFn result_;
};

}  // namespace rabitq::binding
