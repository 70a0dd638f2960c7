// A small, strict JSON reader (RFC 8259) for model files: Keras configs and safetensors headers.
// It reads untrusted input, so nesting is bounded, duplicate keys are rejected, strings must be
// valid UTF-8 and numbers must fit a double; every failure is a ValueError naming the byte.
#pragma once
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "shenjing/errors.hpp"

namespace shenjing::json {

constexpr int kMaxDepth = 64;  // arrays/objects nested deeper than this are rejected
// A Value takes ~100 bytes, so "[0,0,..." costs ~50x its size in memory; this keeps a hostile
// text under 1 GB while leaving room for a safetensors header of 500,000 tensors.
constexpr size_t kMaxValues = size_t(1) << 22;

struct Value {
  enum class Kind { Null, Bool, Number, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  double number = 0.0;
  std::string string;
  std::vector<Value> array;
  std::vector<std::pair<std::string, Value>> object;  // in file order

  bool is_null() const { return kind == Kind::Null; }
  bool is_bool() const { return kind == Kind::Bool; }
  bool is_number() const { return kind == Kind::Number; }
  bool is_string() const { return kind == Kind::String; }
  bool is_array() const { return kind == Kind::Array; }
  bool is_object() const { return kind == Kind::Object; }
  // The member named `key`; nullptr if absent or this is not an object.
  const Value* find(const std::string& key) const;
};

// Parses a complete JSON text. Throws ValueError("<what>: invalid JSON at byte N: <reason>.")
// with N counted from 0; also when the text holds more than kMaxValues values.
Value parse(const std::string& text, const std::string& what);

// For messages: "null", "true", "the number 2.5", "a string", "an array", "an object".
std::string describe(const Value& v);
// For messages: 's' in single quotes, control characters escaped, cut to about 80 bytes.
std::string quote(const std::string& s);

// Typed reads for config files. `what` names the value in messages, e.g. "config.json: 'units'"
// gives "config.json: 'units' must be an integer between 1 and 4096, got the number 2.5."
// obj[key]; throws "<what>: missing 'key'." (or "<what> must be an object ...").
const Value& require(const Value& obj, const std::string& key, const std::string& what);
// "<what>: 'key'": how the typed reads below name a member of `what`.
std::string member(const std::string& what, const std::string& key);
// An integral number in [lo, hi]; beyond +-2^53 doubles are not exact, so those are rejected.
long long as_int(const Value& v, const std::string& what, long long lo, long long hi);
double as_number(const Value& v, const std::string& what);
bool as_bool(const Value& v, const std::string& what);
const std::string& as_string(const Value& v, const std::string& what);

}  // namespace shenjing::json
