#include "errors.h"

#include <exception>
#include <new>

namespace rabitq::binding {

NativeFailure current_failure() {
  try {
    throw;
  } catch (const Error& e) {
    return {e.kind(), e.what()};
  } catch (const std::bad_alloc&) {
    return {ErrorKind::kGeneric, "out of memory"};
  } catch (const std::exception& e) {
    return {ErrorKind::kGeneric, e.what()};
  } catch (...) {
    return {ErrorKind::kGeneric, "unknown native error"};
  }
}

Napi::Error to_js_error(Napi::Env env, const NativeFailure& failure) {
  const std::string& msg = failure.message.empty() ? std::string("native error") : failure.message;
  switch (failure.kind) {
    case ErrorKind::kRange:
      return Napi::RangeError::New(env, msg);
    case ErrorKind::kType:
      return Napi::TypeError::New(env, msg);
    case ErrorKind::kFormat: {
      Napi::Error err = Napi::Error::New(env, msg);
      err.Set("code", Napi::String::New(env, "EBADINDEX"));
      return err;
    }
    default:
      return Napi::Error::New(env, msg);
  }
}

void rethrow_as_js(Napi::Env env) {
  try {
    throw;
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    throw to_js_error(env, current_failure());
  }
}

}  // namespace rabitq::binding
