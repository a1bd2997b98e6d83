// Argument unpacking for the binding: every value that crosses from JS is
// checked here for its type, and every typed array for its element type and
// length, before a raw pointer reaches the core. The TypeScript layer
// validates meaning (ranges, finiteness, ...); these checks only make sure a
// direct call with the wrong arguments is a TypeError / RangeError instead of
// an out-of-bounds access. They are one N-API call per argument, so they cost
// nothing next to a search.
//
// Detached buffers report length 0, so they fail the length checks.
#pragma once
#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace rabitq::binding {

// Cold paths: build the message and throw (never inline in the hot callers).
[[noreturn]] void throw_type_error(Napi::Env env, const std::string& message);
[[noreturn]] void throw_range_error(Napi::Env env, const std::string& message);
[[noreturn]] void throw_wrong_type(Napi::Env env, const char* name, const char* want, napi_value got);
[[noreturn]] void throw_too_short(Napi::Env env, const char* name, const char* want, size_t need, size_t got);

// The element type of each TypedArray kind we accept.
template <typename T>
struct ArrayKind;
#define RABITQ_ARRAY_KIND(T, napi_type, js_name)            \
  template <>                                               \
  struct ArrayKind<T> {                                     \
    static constexpr napi_typedarray_type type = napi_type; \
    static constexpr const char* name = js_name;            \
  };
RABITQ_ARRAY_KIND(float, napi_float32_array, "a Float32Array")
RABITQ_ARRAY_KIND(double, napi_float64_array, "a Float64Array")
RABITQ_ARRAY_KIND(int32_t, napi_int32_array, "an Int32Array")
RABITQ_ARRAY_KIND(uint32_t, napi_uint32_array, "a Uint32Array")
RABITQ_ARRAY_KIND(uint16_t, napi_uint16_array, "a Uint16Array")
RABITQ_ARRAY_KIND(uint8_t, napi_uint8_array, "a Uint8Array")
RABITQ_ARRAY_KIND(int64_t, napi_bigint64_array, "a BigInt64Array")
RABITQ_ARRAY_KIND(uint64_t, napi_biguint64_array, "a BigUint64Array")
#undef RABITQ_ARRAY_KIND

// A typed array's elements, borrowed: valid while the JS array is alive and
// attached (async work pins the array, see PromiseWorker::Pin).
template <typename T>
struct Span {
  T* data = nullptr;
  size_t size = 0;
};

// Any typed array: its kind, length (elements) and data. False for other values.
struct TypedArrayInfo {
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
};
inline bool typed_array_info(Napi::Env env, napi_value v, TypedArrayInfo* out) {
  return napi_get_typedarray_info(env, v, &out->type, &out->length, &out->data, nullptr, nullptr) == napi_ok;
}

inline bool is_nullish(Napi::Env env, napi_value v) {
  napi_valuetype t;
  return napi_typeof(env, v, &t) == napi_ok && (t == napi_null || t == napi_undefined);
}

// A typed array of element type T with at least min_len elements.
template <typename T>
inline Span<T> array_arg(Napi::Env env, napi_value v, const char* name, size_t min_len = 0) {
  TypedArrayInfo a;
  if (!typed_array_info(env, v, &a) || a.type != ArrayKind<T>::type) throw_wrong_type(env, name, ArrayKind<T>::name, v);
  if (a.length < min_len) throw_too_short(env, name, ArrayKind<T>::name, min_len, a.length);
  return {static_cast<T*>(a.data), a.length};
}
// The same, or an empty span for null / undefined.
template <typename T>
inline Span<T> optional_array_arg(Napi::Env env, napi_value v, const char* name, size_t min_len = 0) {
  TypedArrayInfo a;
  if (typed_array_info(env, v, &a)) {
    if (a.type != ArrayKind<T>::type) throw_wrong_type(env, name, ArrayKind<T>::name, v);
    if (a.length < min_len) throw_too_short(env, name, ArrayKind<T>::name, min_len, a.length);
    return {static_cast<T*>(a.data), a.length};
  }
  if (!is_nullish(env, v)) throw_wrong_type(env, name, ArrayKind<T>::name, v);
  return {};
}

// Search results: the core writes 64-bit ids; 32-bit indexes hand the caller
// an Int32Array, 64-bit ones a BigInt64Array (written in place).
struct IdsOut {
  int32_t* i32 = nullptr;
  int64_t* i64 = nullptr;
  size_t size = 0;
};
inline IdsOut ids_out_arg(Napi::Env env, napi_value v, const char* name, size_t min_len) {
  TypedArrayInfo a;
  IdsOut o;
  if (typed_array_info(env, v, &a)) {
    if (a.type == napi_int32_array)
      o.i32 = static_cast<int32_t*>(a.data);
    else if (a.type == napi_bigint64_array)
      o.i64 = static_cast<int64_t*>(a.data);
  }
  if (o.i32 == nullptr && o.i64 == nullptr) throw_wrong_type(env, name, "an Int32Array or a BigInt64Array", v);
  if (a.length < min_len) throw_too_short(env, name, o.i32 ? "an Int32Array" : "a BigInt64Array", min_len, a.length);
  o.size = a.length;
  return o;
}

// Caller ids: a Uint32Array or a BigUint64Array of exactly `count` entries,
// or null / undefined (then neither pointer is set).
struct IdsIn {
  const uint32_t* ids32 = nullptr;
  const uint64_t* ids64 = nullptr;
  bool given = false;
};
IdsIn ids_in_arg(Napi::Env env, napi_value v, const char* name, size_t count);

// Scalars. uint32: a number that is an integer in [0, 2^32).
uint32_t uint32_arg(Napi::Env env, napi_value v, const char* name);
double number_arg(Napi::Env env, napi_value v, const char* name);
bool bool_arg(Napi::Env env, napi_value v, const char* name);
std::string string_arg(Napi::Env env, napi_value v, const char* name);
Napi::Object object_arg(Napi::Env env, napi_value v, const char* name);

// The allow-list of a search: kind 0 none, 1 bitset (Uint8Array), 2
// ascending Uint32Array, 3 ascending BigUint64Array. Missing arguments are
// kind 0. The array is borrowed. count: elements (bytes for the bitset).
struct FilterArg {
  uint32_t kind = 0;
  const void* data = nullptr;
  size_t count = 0;
};
FilterArg filter_arg(const Napi::CallbackInfo& info, size_t kind_index, size_t array_index);

}  // namespace rabitq::binding
