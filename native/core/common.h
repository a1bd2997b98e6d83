// Error handling shared by the whole core. The core never exits or prints:
// it throws, and the binding turns the exception into a JS error.
#pragma once
#include <stdexcept>
#include <string>

namespace rabitq {

// kind lets the binding choose TypeError / RangeError / Error.
enum class ErrorKind { kGeneric, kRange, kType, kFormat };

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& msg) : std::runtime_error(msg), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

#define RABITQ_THROW_IF_NOT(cond, kind, msg)                              \
  do {                                                                    \
    if (!(cond)) throw ::rabitq::Error(::rabitq::ErrorKind::kind, (msg)); \
  } while (0)

}  // namespace rabitq
