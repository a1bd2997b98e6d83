// ThreadPool::parallel_for: coverage of every item, slot discipline, error
// propagation, nesting, and reuse after a failure.
#include <atomic>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "testing.h"
#include "thread_pool.h"

using rabitq::ThreadPool;

namespace {

TEST_CASE("every item runs exactly once, for any n and thread cap" * doctest::test_suite("thread_pool")) {
  ThreadPool pool(4);
  CHECK(pool.size() == 4);
  for (size_t n : {0, 1, 2, 3, 4, 5, 17, 1000, 100000}) {
    for (size_t cap : {0, 1, 2, 3, 4, 9}) {
      std::vector<std::atomic<int>> hits(n);
      for (auto& h : hits) h.store(0);
      const size_t slots = pool.slots_for(n, cap);
      std::atomic<bool> bad_slot{false};
      pool.parallel_for(n, cap, [&](size_t i, size_t slot) {
        if (slot >= slots) bad_slot = true;
        hits[i].fetch_add(1);
      });
      bool once = true;
      for (auto& h : hits) once = once && h.load() == 1;
      CHECK_MESSAGE(once, "n=" << n << " cap=" << cap);
      CHECK_MESSAGE(!bad_slot.load(), "slot out of range, n=" << n << " cap=" << cap);
      const size_t expect_slots = std::max<size_t>(1, std::min<size_t>({n == 0 ? 1 : n, cap == 0 ? 4 : cap, 4}));
      CHECK_MESSAGE(slots == expect_slots, "slots_for(" << n << "," << cap << ")=" << slots);
    }
  }
}

TEST_CASE("concurrent calls never share a slot" * doctest::test_suite("thread_pool")) {
  ThreadPool pool(4);
  const size_t slots = pool.slots_for(400, 0);
  std::vector<std::atomic<int>> busy(slots);
  for (auto& b : busy) b.store(0);
  std::atomic<bool> shared{false};
  pool.parallel_for(400, 0, [&](size_t, size_t slot) {
    if (busy[slot].fetch_add(1) != 0) shared = true;
    std::this_thread::sleep_for(std::chrono::microseconds(50));
    busy[slot].fetch_sub(1);
  });
  CHECK(!shared.load());
}

TEST_CASE("the exception of a failing item is rethrown to the caller" * doctest::test_suite("thread_pool")) {
  ThreadPool pool(4);
  for (size_t bad : {0, 1, 7, 999}) {
    std::string message;
    try {
      pool.parallel_for(1000, 0, [&](size_t i, size_t) {
        if (i == bad) throw std::runtime_error("item " + std::to_string(i));
      });
    } catch (const std::runtime_error& e) {
      message = e.what();
    }
    CHECK_MESSAGE(message == "item " + std::to_string(bad), "got '" << message << "'");
  }
  // The exception type survives (not sliced to std::exception).
  bool range = false;
  try {
    pool.parallel_for(10, 0, [](size_t i, size_t) {
      if (i == 3) throw std::out_of_range("x");
    });
  } catch (const std::out_of_range&) {
    range = true;
  }
  CHECK(range);
}

TEST_CASE("the first exception wins when several items fail" * doctest::test_suite("thread_pool")) {
  ThreadPool pool(4);
  for (int round = 0; round < 5; ++round) {
    std::string message;
    try {
      // Item 0 fails at once; item 1 fails only after a pause, by which time
      // the first failure is recorded (or item 1 never started).
      pool.parallel_for(4, 0, [&](size_t i, size_t) {
        if (i == 0) throw std::runtime_error("first");
        if (i == 1) {
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
          throw std::runtime_error("second");
        }
      });
    } catch (const std::exception& e) {
      message = e.what();
    }
    CHECK_MESSAGE(message == "first", "round " << round << " got '" << message << "'");
  }
}

TEST_CASE("no item is still running when parallel_for returns or throws" * doctest::test_suite("thread_pool")) {
  ThreadPool pool(4);
  for (int round = 0; round < 10; ++round) {
    std::atomic<int> running{0}, started{0};
    bool threw = false;
    try {
      pool.parallel_for(64, 0, [&](size_t i, size_t) {
        running.fetch_add(1);
        started.fetch_add(1);
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        running.fetch_sub(1);
        if (i == 5) throw std::runtime_error("stop");
      });
    } catch (const std::runtime_error&) {
      threw = true;
    }
    CHECK(threw);
    CHECK_MESSAGE(running.load() == 0, "round " << round);
    const int after = started.load();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    CHECK_MESSAGE(started.load() == after, "items started after parallel_for threw");
  }
  // Still usable after failures.
  std::atomic<size_t> sum{0};
  pool.parallel_for(100, 0, [&](size_t i, size_t) { sum.fetch_add(i); });
  CHECK(sum.load() == 4950);
}

TEST_CASE("a parallel_for inside a worker runs inline on slot 0" * doctest::test_suite("thread_pool")) {
  ThreadPool pool(3);
  std::atomic<int> inner_items{0};
  std::atomic<bool> bad{false};
  pool.parallel_for(6, 0, [&](size_t, size_t) {
    if (pool.slots_for(10, 0) != 1) bad = true;
    const auto self = std::this_thread::get_id();
    pool.parallel_for(10, 0, [&](size_t, size_t slot) {
      if (slot != 0 || std::this_thread::get_id() != self) bad = true;
      inner_items.fetch_add(1);
    });
  });
  CHECK(!bad.load());
  CHECK(inner_items.load() == 60);
}

TEST_CASE("the caller of a one-slot loop runs it itself and sees its exception" * doctest::test_suite("thread_pool")) {
  ThreadPool pool(2);
  const auto self = std::this_thread::get_id();
  bool same = true;
  pool.parallel_for(5, 1, [&](size_t, size_t slot) { same = same && slot == 0 && std::this_thread::get_id() == self; });
  CHECK(same);
  CHECK_THROWS_AS(pool.parallel_for(5, 1,
                                    [](size_t i, size_t) {
                                      if (i == 2) throw std::logic_error("x");
                                    }),
                  std::logic_error);
}

TEST_CASE("several threads may share one pool" * doctest::test_suite("thread_pool")) {
  ThreadPool pool(2);
  std::vector<std::thread> callers;
  std::atomic<size_t> total{0};
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&] {
      for (int r = 0; r < 20; ++r) pool.parallel_for(50, 0, [&](size_t, size_t) { total.fetch_add(1); });
    });
  }
  for (auto& t : callers) t.join();
  CHECK(total.load() == 4u * 20u * 50u);
}

TEST_CASE("a zero-thread pool still has one worker; default_threads is positive" * doctest::test_suite("thread_pool")) {
  ThreadPool pool(0);
  CHECK(pool.size() == 1);
  CHECK(ThreadPool::default_threads() >= 1);
  CHECK(ThreadPool::affinity_cpus() >= 1);
  CHECK(ThreadPool::global().size() >= 1);
}

}  // namespace
