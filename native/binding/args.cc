// The cold half of args.h: messages and the scalar checks.
#include "args.h"

#include <cmath>

namespace rabitq::binding {

namespace {

// "a Float32Array", "a number", "null", ... for messages.
std::string describe(Napi::Env env, napi_value v) {
  TypedArrayInfo a;
  if (typed_array_info(env, v, &a)) {
    switch (a.type) {
      case napi_int8_array:
        return "an Int8Array";
      case napi_uint8_array:
        return "a Uint8Array";
      case napi_uint8_clamped_array:
        return "a Uint8ClampedArray";
      case napi_int16_array:
        return "an Int16Array";
      case napi_uint16_array:
        return "a Uint16Array";
      case napi_int32_array:
        return "an Int32Array";
      case napi_uint32_array:
        return "a Uint32Array";
      case napi_float32_array:
        return "a Float32Array";
      case napi_float64_array:
        return "a Float64Array";
      case napi_bigint64_array:
        return "a BigInt64Array";
      case napi_biguint64_array:
        return "a BigUint64Array";
      default:
        return "a typed array";
    }
  }
  napi_valuetype t = napi_undefined;
  napi_typeof(env, v, &t);
  switch (t) {
    case napi_undefined:
      return "undefined";
    case napi_null:
      return "null";
    case napi_boolean:
      return "a boolean";
    case napi_number:
      return "a number";
    case napi_string:
      return "a string";
    case napi_symbol:
      return "a symbol";
    case napi_function:
      return "a function";
    case napi_bigint:
      return "a bigint";
    default: {
      bool is = false;
      if (napi_is_arraybuffer(env, v, &is) == napi_ok && is) return "an ArrayBuffer";
      if (napi_is_array(env, v, &is) == napi_ok && is) return "an Array";
      return "an object";
    }
  }
}

}  // namespace

void throw_type_error(Napi::Env env, const std::string& message) { throw Napi::TypeError::New(env, message); }
void throw_range_error(Napi::Env env, const std::string& message) { throw Napi::RangeError::New(env, message); }

void throw_wrong_type(Napi::Env env, const char* name, const char* want, napi_value got) {
  throw_type_error(env, std::string(name) + " must be " + want + ", got " + describe(env, got));
}

void throw_too_short(Napi::Env env, const char* name, const char* want, size_t need, size_t got) {
  throw_type_error(env, std::string(name) + " must be " + want + " of at least " + std::to_string(need) +
                            " elements, got " + std::to_string(got) + (got == 0 ? " (empty or detached)" : ""));
}

IdsIn ids_in_arg(Napi::Env env, napi_value v, const char* name, size_t count) {
  IdsIn ids;
  TypedArrayInfo a;
  if (typed_array_info(env, v, &a)) {
    if (a.type == napi_uint32_array)
      ids.ids32 = static_cast<const uint32_t*>(a.data);
    else if (a.type == napi_biguint64_array)
      ids.ids64 = static_cast<const uint64_t*>(a.data);
    else
      throw_wrong_type(env, name, "a Uint32Array or a BigUint64Array", v);
    if (a.length != count)
      throw_type_error(env, std::string(name) + " must hold " + std::to_string(count) + " ids (one per vector), got " +
                                std::to_string(a.length) + (a.length == 0 ? " (empty or detached)" : ""));
    ids.given = true;
    return ids;
  }
  if (!is_nullish(env, v)) throw_wrong_type(env, name, "a Uint32Array, a BigUint64Array or undefined", v);
  return ids;
}

uint32_t uint32_arg(Napi::Env env, napi_value v, const char* name) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) throw_wrong_type(env, name, "a number", v);
  if (!(d >= 0 && d <= 4294967295.0) || d != std::floor(d))
    throw_range_error(env, std::string(name) + " must be an integer in 0..4294967295, got " + std::to_string(d));
  return static_cast<uint32_t>(d);
}

double number_arg(Napi::Env env, napi_value v, const char* name) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) throw_wrong_type(env, name, "a number", v);
  return d;
}

bool bool_arg(Napi::Env env, napi_value v, const char* name) {
  bool b;
  if (napi_get_value_bool(env, v, &b) != napi_ok) throw_wrong_type(env, name, "a boolean", v);
  return b;
}

std::string string_arg(Napi::Env env, napi_value v, const char* name) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, nullptr, 0, &len) != napi_ok) throw_wrong_type(env, name, "a string", v);
  return Napi::String(env, v).Utf8Value();
}

Napi::Object object_arg(Napi::Env env, napi_value v, const char* name) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_object) throw_wrong_type(env, name, "an object", v);
  return Napi::Object(env, v);
}

FilterArg filter_arg(const Napi::CallbackInfo& info, size_t kind_index, size_t array_index) {
  FilterArg f;
  Napi::Env env = info.Env();
  if (info.Length() <= kind_index || is_nullish(env, info[kind_index])) return f;
  f.kind = uint32_arg(env, info[kind_index], "filterKind");
  if (f.kind == 0) return f;
  const napi_value arr = info.Length() > array_index ? napi_value(info[array_index]) : napi_value(env.Undefined());
  TypedArrayInfo a;
  static const napi_typedarray_type want_type[] = {napi_uint8_array, napi_uint8_array, napi_uint32_array,
                                                   napi_biguint64_array};
  static const char* want_name[] = {"", "a Uint8Array (filterKind 1)", "a Uint32Array (filterKind 2)",
                                    "a BigUint64Array (filterKind 3)"};
  if (f.kind > 3) throw_range_error(env, "filterKind must be 0, 1, 2 or 3, got " + std::to_string(f.kind));
  if (!typed_array_info(env, arr, &a) || a.type != want_type[f.kind])
    throw_wrong_type(env, "filter", want_name[f.kind], arr);
  f.data = a.data;
  f.count = a.length;
  return f;
}

}  // namespace rabitq::binding
