// Strict recursive-descent JSON parser (RFC 8259) with bounded depth, plus the typed accessors
// config readers use. Errors name the byte offset so a user can find the problem in the file.
#include "io/json.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace shenjing::json {
namespace {

constexpr double kMaxExactInt = 9007199254740992.0;  // 2^53

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Shortest text that reads back as d ("2.5", "1e+300").
std::string num_str(double d) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  return std::string(buf, r.ptr);
}

// from_chars reports underflow and overflow alike as out of range. Like Python's json, read
// underflow as zero and reject only overflow: decided by the decimal exponent of the first
// significant digit (the digits are known to match the JSON number grammar).
bool underflows(const char* p, const char* end) {
  if (*p == '-') ++p;
  const char* q = p;
  while (q < end && is_digit(*q)) ++q;
  long long e10 = 0;
  if (!(q - p == 1 && *p == '0')) {
    e10 = (q - p) - 1;
  } else if (q < end && *q == '.') {
    const char* z = ++q;
    while (q < end && *q == '0') ++q;
    e10 = -(q - z) - 1;
  }
  while (q < end && *q != 'e' && *q != 'E') ++q;
  if (q < end) {
    ++q;
    const bool neg = *q == '-';
    if (*q == '-' || *q == '+') ++q;
    long long e = 0;
    for (; q < end; ++q) e = std::min(e * 10 + (*q - '0'), 1000000000000LL);  // saturate
    e10 += neg ? -e : e;
  }
  return e10 < 0;
}

class Parser {
 public:
  Parser(const std::string& text, const std::string& what)
      : s_(text.data()), n_(text.size()), what_(what) {}

  Value run() {
    Value v;
    skip_ws();
    value(v, 0);
    skip_ws();
    if (i_ != n_) fail("unexpected data after the end of the JSON value");
    return v;
  }

 private:
  const char* s_;
  size_t n_;
  size_t i_ = 0;
  size_t values_ = 0;
  const std::string& what_;

  [[noreturn]] void fail_at(size_t pos, const std::string& reason) const {
    throw ValueError(what_ + ": invalid JSON at byte " + std::to_string(pos) + ": " + reason + ".");
  }
  [[noreturn]] void fail(const std::string& reason) const { fail_at(i_, reason); }

  [[noreturn]] void unexpected() const {
    if (i_ == n_) fail("unexpected end of the text");
    const unsigned char c = (unsigned char)s_[i_];
    if (c > 0x20 && c < 0x7f) fail(std::string("unexpected character '") + (char)c + "'");
    static const char hex[] = "0123456789ABCDEF";
    fail(std::string("unexpected byte 0x") + hex[c >> 4] + hex[c & 15]);
  }

  void skip_ws() {
    while (i_ < n_ && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }

  // Consumes `c` (after whitespace) or fails with "expected <expect>".
  void expect(char c, const char* expect) {
    skip_ws();
    if (i_ < n_ && s_[i_] == c) {
      ++i_;
      return;
    }
    fail(std::string("expected ") + expect);
  }

  void value(Value& out, int depth) {
    if (i_ == n_) fail("expected a value, found the end of the text");
    if (++values_ > kMaxValues)
      fail("more than " + std::to_string(kMaxValues) + " values, the most shenjing reads");
    switch (s_[i_]) {
      case '{': return object(out, depth);
      case '[': return array(out, depth);
      case '"': out.kind = Value::Kind::String; return string(out.string);
      case 't': literal("true"); out.kind = Value::Kind::Bool; out.boolean = true; return;
      case 'f': literal("false"); out.kind = Value::Kind::Bool; return;
      case 'n': literal("null"); return;
      default:
        if (s_[i_] == '-' || is_digit(s_[i_])) return number(out);
        unexpected();
    }
  }

  void literal(const char* word) {
    const size_t len = std::char_traits<char>::length(word);
    if (n_ - i_ < len || std::string::traits_type::compare(s_ + i_, word, len) != 0)
      unexpected();
    i_ += len;
  }

  void enter(int depth) const {
    if (depth >= kMaxDepth) fail("nested deeper than " + std::to_string(kMaxDepth) + " levels");
  }

  void array(Value& out, int depth) {
    enter(depth);
    out.kind = Value::Kind::Array;
    ++i_;
    skip_ws();
    if (i_ < n_ && s_[i_] == ']') {
      ++i_;
      return;
    }
    for (;;) {
      skip_ws();
      out.array.emplace_back();
      value(out.array.back(), depth + 1);
      skip_ws();
      if (i_ < n_ && s_[i_] == ']') break;
      expect(',', "',' or ']'");
    }
    ++i_;
  }

  void object(Value& out, int depth) {
    enter(depth);
    out.kind = Value::Kind::Object;
    ++i_;
    skip_ws();
    if (i_ < n_ && s_[i_] == '}') {
      ++i_;
      return;
    }
    std::vector<size_t> key_pos;  // where each key starts, for the duplicate-key message
    for (;;) {
      skip_ws();
      if (i_ == n_ || s_[i_] != '"') fail("expected a string key in double quotes");
      key_pos.push_back(i_);
      std::string key;
      string(key);
      expect(':', "':' after the key");
      skip_ws();
      out.object.emplace_back(std::move(key), Value());
      value(out.object.back().second, depth + 1);
      skip_ws();
      if (i_ < n_ && s_[i_] == '}') break;
      expect(',', "',' or '}'");
    }
    ++i_;
    check_duplicates(out.object, key_pos);
  }

  // Sorting keeps large objects (a safetensors header may list thousands of tensors) at
  // O(n log n); the first repeated key in file order is reported.
  void check_duplicates(const std::vector<std::pair<std::string, Value>>& obj,
                        const std::vector<size_t>& key_pos) const {
    if (obj.size() < 2) return;
    std::vector<size_t> idx(obj.size());
    for (size_t k = 0; k < idx.size(); ++k) idx[k] = k;
    std::stable_sort(idx.begin(), idx.end(),
                     [&](size_t a, size_t b) { return obj[a].first < obj[b].first; });
    size_t dup = obj.size();
    for (size_t k = 0; k + 1 < idx.size(); ++k)
      if (obj[idx[k]].first == obj[idx[k + 1]].first) dup = std::min(dup, idx[k + 1]);
    if (dup < obj.size()) fail_at(key_pos[dup], "duplicate key " + quote(obj[dup].first));
  }

  void number(Value& out) {
    const size_t start = i_;
    if (s_[i_] == '-') ++i_;
    if (i_ == n_ || !is_digit(s_[i_])) fail("expected a digit in the number");
    if (s_[i_] == '0') {
      ++i_;
      if (i_ < n_ && is_digit(s_[i_])) fail_at(start, "numbers cannot have leading zeros");
    } else {
      while (i_ < n_ && is_digit(s_[i_])) ++i_;
    }
    if (i_ < n_ && s_[i_] == '.') {
      ++i_;
      if (i_ == n_ || !is_digit(s_[i_])) fail("expected a digit after the decimal point");
      while (i_ < n_ && is_digit(s_[i_])) ++i_;
    }
    if (i_ < n_ && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      if (i_ < n_ && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      if (i_ == n_ || !is_digit(s_[i_])) fail("expected a digit in the exponent");
      while (i_ < n_ && is_digit(s_[i_])) ++i_;
    }
    out.kind = Value::Kind::Number;
    // from_chars, unlike strtod, ignores the C locale's decimal separator.
    const auto r = std::from_chars(s_ + start, s_ + i_, out.number);
    if (r.ec == std::errc::result_out_of_range) {
      if (!underflows(s_ + start, s_ + i_)) fail_at(start, "number out of the range of a double");
      out.number = s_[start] == '-' ? -0.0 : 0.0;
    } else if (r.ec != std::errc() || r.ptr != s_ + i_) {
      fail_at(start, "invalid number");  // not expected: the grammar was checked above
    }
  }

  unsigned hex4() {
    if (n_ - i_ < 4) fail("expected 4 hex digits after \\u");
    unsigned v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s_[i_ + k];
      const int d = is_digit(c) ? c - '0'
                    : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                    : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
      if (d < 0) fail("expected 4 hex digits after \\u");
      v = v * 16 + (unsigned)d;
    }
    i_ += 4;
    return v;
  }

  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += (char)cp;
    } else if (cp < 0x800) {
      out += (char)(0xC0 | (cp >> 6));
      out += (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += (char)(0xE0 | (cp >> 12));
      out += (char)(0x80 | ((cp >> 6) & 0x3F));
      out += (char)(0x80 | (cp & 0x3F));
    } else {
      out += (char)(0xF0 | (cp >> 18));
      out += (char)(0x80 | ((cp >> 12) & 0x3F));
      out += (char)(0x80 | ((cp >> 6) & 0x3F));
      out += (char)(0x80 | (cp & 0x3F));
    }
  }

  void escape(std::string& out) {
    const size_t at = i_++;  // the backslash
    if (i_ == n_) fail("unterminated string");
    const char e = s_[i_++];
    switch (e) {
      case '"': case '\\': case '/': out += e; return;
      case 'b': out += '\b'; return;
      case 'f': out += '\f'; return;
      case 'n': out += '\n'; return;
      case 'r': out += '\r'; return;
      case 't': out += '\t'; return;
      case 'u': break;
      default:
        if (e > 0x20 && e < 0x7f) fail_at(at, std::string("invalid escape '\\") + e + "'");
        fail_at(at, "invalid escape");
    }
    unsigned cp = hex4();
    if (cp >= 0xD800 && cp <= 0xDBFF) {  // a high surrogate must be followed by a low one
      if (n_ - i_ < 2 || s_[i_] != '\\' || s_[i_ + 1] != 'u')
        fail_at(at, "unpaired UTF-16 surrogate");
      i_ += 2;
      const unsigned lo = hex4();
      if (lo < 0xDC00 || lo > 0xDFFF) fail_at(at, "unpaired UTF-16 surrogate");
      cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
      fail_at(at, "unpaired UTF-16 surrogate");
    }
    append_utf8(out, cp);
  }

  // One UTF-8 sequence, checked as in Unicode Table 3-7: no overlong forms, no encoded
  // surrogates, nothing above U+10FFFF.
  void utf8(std::string& out) {
    const unsigned char c = (unsigned char)s_[i_];
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    }
    bool ok = len != 0 && n_ - i_ >= len;
    for (size_t k = 1; ok && k < len; ++k) {
      const unsigned char b = (unsigned char)s_[i_ + k];
      ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    }
    if (!ok) fail("invalid UTF-8 in a string");
    out.append(s_ + i_, len);
    i_ += len;
  }

  void string(std::string& out) {
    ++i_;  // the opening quote
    for (;;) {
      if (i_ == n_) fail("unterminated string");
      const unsigned char c = (unsigned char)s_[i_];
      if (c == '"') {
        ++i_;
        return;
      } else if (c == '\\') {
        escape(out);
      } else if (c < 0x20) {
        fail("control character in a string (write it as an escape such as \\n)");
      } else if (c >= 0x80) {
        utf8(out);
      } else {  // a run of plain ASCII, appended at once
        size_t j = i_ + 1;
        while (j < n_ && (unsigned char)s_[j] >= 0x20 && (unsigned char)s_[j] < 0x80 &&
               s_[j] != '"' && s_[j] != '\\')
          ++j;
        out.append(s_ + i_, j - i_);
        i_ = j;
      }
    }
  }
};

}  // namespace

const Value* Value::find(const std::string& key) const {
  if (kind != Kind::Object) return nullptr;
  for (const auto& kv : object)
    if (kv.first == key) return &kv.second;
  return nullptr;
}

Value parse(const std::string& text, const std::string& what) { return Parser(text, what).run(); }

std::string describe(const Value& v) {
  switch (v.kind) {
    case Value::Kind::Null: return "null";
    case Value::Kind::Bool: return v.boolean ? "true" : "false";
    case Value::Kind::Number: return "the number " + num_str(v.number);
    case Value::Kind::String: return "a string";
    case Value::Kind::Array: return "an array";
    case Value::Kind::Object: return "an object";
  }
  return "a value";
}

std::string quote(const std::string& s) {
  constexpr size_t kMax = 80;
  std::string out = "'";
  size_t i = 0;
  for (; i < s.size() && i < kMax; ++i) {
    const unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == 0x7f) {
      static const char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += (char)c;
    }
  }
  if (i < s.size()) {
    // Cut at a character boundary so the message stays valid UTF-8 (Python decodes it).
    while (!out.empty() && ((unsigned char)out.back() & 0xC0) == 0x80) out.pop_back();
    if (!out.empty() && (unsigned char)out.back() >= 0xC0) out.pop_back();
    out += "...";
  }
  return out + "'";
}

const Value& require(const Value& obj, const std::string& key, const std::string& what) {
  if (!obj.is_object())
    throw ValueError(what + " must be a JSON object, got " + describe(obj) + ".");
  const Value* v = obj.find(key);
  if (!v) throw ValueError(what + ": missing " + quote(key) + ".");
  return *v;
}

std::string member(const std::string& what, const std::string& key) {
  return what + ": " + quote(key);
}

long long as_int(const Value& v, const std::string& what, long long lo, long long hi) {
  const std::string range =
      "an integer between " + std::to_string(lo) + " and " + std::to_string(hi);
  if (!v.is_number() || v.number != std::floor(v.number))
    throw ValueError(what + " must be " + range + ", got " + describe(v) + ".");
  if (std::fabs(v.number) > kMaxExactInt)
    throw ValueError(what + " must be " + range + ", got " + describe(v) +
                     " (integers beyond 2^53 cannot be read exactly).");
  const long long n = (long long)v.number;  // exact: |number| <= 2^53
  if (n < lo || n > hi)
    throw ValueError(what + " must be " + range + ", got " + std::to_string(n) + ".");
  return n;
}

double as_number(const Value& v, const std::string& what) {
  if (!v.is_number()) throw ValueError(what + " must be a number, got " + describe(v) + ".");
  return v.number;
}

bool as_bool(const Value& v, const std::string& what) {
  if (!v.is_bool()) throw ValueError(what + " must be true or false, got " + describe(v) + ".");
  return v.boolean;
}

const std::string& as_string(const Value& v, const std::string& what) {
  if (!v.is_string()) throw ValueError(what + " must be a string, got " + describe(v) + ".");
  return v.string;
}

}  // namespace shenjing::json
