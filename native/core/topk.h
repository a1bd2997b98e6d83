// The one bounded top-k heap of the core: the k smallest (distance, id)
// pairs seen so far, worst on top. Pairs compare by distance, then by id, so
// the result does not depend on the order candidates arrive in. Used for the
// index's results and bounds, its probe lists and exact k-NN.
#pragma once
#include <algorithm>
#include <cstddef>
#include <utility>
#include <vector>

namespace rabitq {

template <class Id>
class TopK {
 public:
  using Entry = std::pair<float, Id>;

  // Empties the heap and sets its bound (capacity is kept across resets).
  void reset(size_t k) {
    k_ = k;
    h_.clear();
    if (h_.capacity() < k) h_.reserve(k);
  }
  size_t size() const { return h_.size(); }
  bool full() const { return h_.size() >= k_; }
  // The k-th smallest distance so far; only valid when !empty.
  float worst() const { return h_.front().first; }
  void push(float d, Id id) {
    const Entry e{d, id};
    if (h_.size() < k_) {
      h_.push_back(e);
      std::push_heap(h_.begin(), h_.end());
    } else if (e < h_.front()) {
      std::pop_heap(h_.begin(), h_.end());
      h_.back() = e;
      std::push_heap(h_.begin(), h_.end());
    }
  }
  // Ascending order (the heap is consumed: reset before the next push).
  std::vector<Entry>& sorted() {
    std::sort(h_.begin(), h_.end());
    return h_;
  }
  // The entries in heap order, e.g. to re-score them before sorting.
  std::vector<Entry>& entries() { return h_; }
  const Entry& operator[](size_t i) const { return h_[i]; }

 private:
  std::vector<Entry> h_;
  size_t k_ = 0;
};

}  // namespace rabitq
