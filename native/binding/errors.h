// The one mapping from C++ exceptions to JS errors, used by the synchronous
// methods and the async workers alike:
//   rabitq::Error kRange  -> RangeError
//   rabitq::Error kType   -> TypeError
//   rabitq::Error kFormat -> Error with code 'EBADINDEX' (src/ivf_index.ts
//                            turns it into IndexFileError)
//   other rabitq::Error, std::exception -> Error
//   std::bad_alloc        -> Error 'out of memory'
// Napi::Error (thrown by the argument checks) passes through unchanged.
#pragma once
#include <napi.h>

#include <string>

#include "../core/common.h"

namespace rabitq::binding {

// What a worker thread caught, kept until it can be turned into a JS error
// on the JS thread.
struct NativeFailure {
  ErrorKind kind = ErrorKind::kGeneric;
  std::string message;
};

// Call inside a catch block (any thread): describes the exception in flight.
NativeFailure current_failure();

Napi::Error to_js_error(Napi::Env env, const NativeFailure& failure);

// Call inside a catch block on the JS thread: rethrows a Napi::Error as it
// is, anything else as the mapped JS error.
[[noreturn]] void rethrow_as_js(Napi::Env env);

// Runs f, turning any C++ exception into the mapped JS error.
template <typename F>
inline auto guarded(Napi::Env env, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (...) {
    rethrow_as_js(env);
  }
}

}  // namespace rabitq::binding
