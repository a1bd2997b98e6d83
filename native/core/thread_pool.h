// One process-wide pool of worker threads for builds and batch searches.
// Sized by the CPUs this process may run on (sched_getaffinity), so
// `taskset -c 2` gives one worker; RABITQ_THREADS overrides.
#pragma once
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace rabitq {

class ThreadPool {
 public:
  explicit ThreadPool(size_t num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  size_t size() const { return workers_.size(); }

  // Calls fn(i, slot) for every i in [0, n), on up to max_threads workers
  // (0 = all). `slot` is in [0, number of workers used) and is unique among
  // the concurrently running calls of this parallel_for, so callers can index
  // per-thread scratch buffers with it. Blocks until all are done; the first
  // exception thrown by fn is rethrown here after the others have stopped.
  // Called from inside a worker it runs inline (no nested waiting).
  void parallel_for(size_t n, size_t max_threads, const std::function<void(size_t i, size_t slot)>& fn);

  // Number of slots parallel_for(n, max_threads) will use.
  size_t slots_for(size_t n, size_t max_threads) const;

  static ThreadPool& global();
  // CPUs this process may use (affinity mask), or RABITQ_THREADS if set.
  static size_t default_threads();
  static size_t affinity_cpus();

 private:
  void worker_loop();
  std::vector<std::thread> workers_;
  std::deque<std::function<void()>> tasks_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
};

}  // namespace rabitq
