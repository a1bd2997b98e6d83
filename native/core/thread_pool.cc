#include "thread_pool.h"

#include <atomic>
#include <cstdlib>
#include <exception>
#include <string>

#include "common.h"

#if defined(__linux__)
#include <sched.h>
#endif

namespace rabitq {

namespace {
thread_local bool t_in_pool_worker = false;
}

ThreadPool::ThreadPool(size_t num_threads) {
  if (num_threads == 0) num_threads = 1;
  workers_.reserve(num_threads);
  for (size_t i = 0; i < num_threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker_loop() {
  t_in_pool_worker = true;
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !tasks_.empty(); });
      if (stop_ && tasks_.empty()) return;
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

size_t ThreadPool::slots_for(size_t n, size_t max_threads) const {
  if (t_in_pool_worker) return 1;
  size_t t = size();
  if (max_threads != 0 && max_threads < t) t = max_threads;
  if (n < t) t = n;
  return t == 0 ? 1 : t;
}

void ThreadPool::parallel_for(size_t n, size_t max_threads, const std::function<void(size_t, size_t)>& fn) {
  if (n == 0) return;
  const size_t slots = slots_for(n, max_threads);
  if (slots == 1) {
    for (size_t i = 0; i < n; ++i) fn(i, 0);
    return;
  }
  struct Shared {
    std::atomic<size_t> next{0};
    std::atomic<bool> failed{false};
    std::exception_ptr error;
    std::mutex mu;
    std::condition_variable done_cv;
    size_t remaining;
  };
  auto shared = std::make_shared<Shared>();
  shared->remaining = slots;
  for (size_t s = 0; s < slots; ++s) {
    auto task = [shared, s, n, &fn] {
      try {
        for (;;) {
          if (shared->failed.load(std::memory_order_relaxed)) break;
          size_t i = shared->next.fetch_add(1, std::memory_order_relaxed);
          if (i >= n) break;
          fn(i, s);
        }
      } catch (...) {
        std::lock_guard<std::mutex> lock(shared->mu);
        if (!shared->failed.exchange(true)) shared->error = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(shared->mu);
      if (--shared->remaining == 0) shared->done_cv.notify_all();
    };
    {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_.emplace_back(std::move(task));
    }
    cv_.notify_one();
  }
  std::unique_lock<std::mutex> lock(shared->mu);
  shared->done_cv.wait(lock, [&] { return shared->remaining == 0; });
  if (shared->error) std::rethrow_exception(shared->error);
}

size_t ThreadPool::affinity_cpus() {
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int c = CPU_COUNT(&set);
    if (c > 0) return static_cast<size_t>(c);
  }
#endif
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : hc;
}

size_t ThreadPool::default_threads() {
  const char* env = std::getenv("RABITQ_THREADS");
  if (env != nullptr && *env != '\0') {
    char* end = nullptr;
    long v = std::strtol(env, &end, 10);
    if (end != nullptr && *end == '\0' && v >= 1 && v <= 1024) return static_cast<size_t>(v);
  }
  return affinity_cpus();
}

ThreadPool& ThreadPool::global() {
  static ThreadPool* pool = new ThreadPool(default_threads());  // never destroyed: workers may outlive static dtors
  return *pool;
}

}  // namespace rabitq
