// Validating safetensors reader. The header is checked completely (sizes against the file size,
// dtypes, shapes, offsets tiling the buffer) before any tensor memory is allocated, and read()
// streams each tensor's bytes straight into place, so memory stays at about the file size.
#include "io/safetensors.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <system_error>

#include "io/json.hpp"
#include "shenjing/errors.hpp"

namespace shenjing::safetensors {
namespace {

using u64 = unsigned long long;
constexpr long long kMaxExactInt = 9007199254740992LL;  // 2^53, the most json::as_int reads

struct DType {
  const char* name;
  size_t size;
};
constexpr DType kDTypes[] = {{"BOOL", 1}, {"U8", 1},   {"I8", 1},  {"I16", 2}, {"U16", 2},
                             {"F16", 2},  {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4},
                             {"F64", 8},  {"I64", 8},  {"U64", 8}};

std::string prefix(const std::string& name) { return "Cannot load '" + name + "': "; }

std::string range_str(u64 a, u64 b) {
  return "[" + std::to_string(a) + ", " + std::to_string(b) + "]";
}

std::string shape_text(const std::vector<long long>& shape) {
  std::string s = "[";
  for (size_t k = 0; k < shape.size(); ++k) s += (k ? ", " : "") + std::to_string(shape[k]);
  return s + "]";
}

// Formats a user may hand us by mistake, recognised by the magic in their first 8 bytes.
std::string known_format(const unsigned char* head) {
  if (std::memcmp(head, "\x89HDF\r\n\x1a\n", 8) == 0)
    return "it looks like an HDF5 file, such as a Keras .h5 model";
  if (std::memcmp(head, "PK\x03\x04", 4) == 0)
    return "it looks like a zip archive, such as a .keras or PyTorch model";
  if (std::memcmp(head, "\x93NUMPY", 6) == 0) return "it looks like a NumPy .npy file";
  return "";
}

[[noreturn]] void not_safetensors(const std::string& name, const std::string& why) {
  throw ValueError(prefix(name) + "this is not a shenjing (safetensors) model file (" + why +
                   ").");
}

// Reads the 8-byte header length from the first 8 bytes and checks it against the file size
// before anything is allocated for the header.
u64 header_length(const unsigned char* head, u64 size, const std::string& name) {
  if (size == 0) throw ValueError(prefix(name) + "the file is empty.");
  if (size < 8)
    throw ValueError(prefix(name) + "the file is " + std::to_string(size) +
                     " bytes long, too short to be a shenjing (safetensors) model file.");
  const std::string known = known_format(head);
  if (!known.empty()) not_safetensors(name, known);
  u64 n = 0;
  for (int k = 7; k >= 0; --k) n = (n << 8) | head[k];  // little-endian whatever the host
  if (n > size - 8) {
    // A length no real header has means this is some other kind of file, not a damaged one.
    if (n > kMaxHeaderBytes)
      not_safetensors(name, "its first 8 bytes give a header length of " + std::to_string(n) +
                                " bytes, but the file has " + std::to_string(size));
    throw ValueError(prefix(name) + "the file is truncated (header says " + std::to_string(n) +
                     " bytes, file has " + std::to_string(size) + ").");
  }
  if (n > kMaxHeaderBytes)
    throw ValueError(prefix(name) + "the header is " + std::to_string(n) +
                     " bytes, more than the " + std::to_string(kMaxHeaderBytes) + "-byte limit.");
  return n;
}

struct Layout {
  File file;                    // tensors with their bytes still empty
  std::vector<u64> begin, end;  // each tensor's byte range in the data buffer
  std::vector<size_t> order;    // tensor indices sorted by offset: the order their bytes lie in
};

// Checks one tensor entry of the header and appends it (bytes left empty) to `out`.
void add_tensor(Layout& out, const std::string& name, const json::Value& v, u64 buffer,
                const std::string& file_name) {
  const std::string what = prefix(file_name) + "tensor " + json::quote(name);
  if (!v.is_object())
    throw ValueError(what + " must be an object with 'dtype', 'shape' and 'data_offsets', got " +
                     json::describe(v) + ".");
  for (const auto& kv : v.object)
    if (kv.first != "dtype" && kv.first != "shape" && kv.first != "data_offsets")
      throw ValueError(what + " has an unexpected field " + json::quote(kv.first) +
                       " (expected only 'dtype', 'shape' and 'data_offsets').");
  Tensor t;
  t.name = name;
  t.dtype = json::as_string(json::require(v, "dtype", what), json::member(what, "dtype"));
  const size_t item = dtype_size(t.dtype);
  if (item == 0) {
    std::string known;
    for (const DType& d : kDTypes) known += (known.empty() ? "" : ", ") + std::string(d.name);
    throw ValueError(what + " has unknown dtype " + json::quote(t.dtype) + " (expected one of " +
                     known + ").");
  }

  const json::Value& shape = json::require(v, "shape", what);
  if (!shape.is_array())
    throw ValueError(json::member(what, "shape") + " must be a list of integers, got " +
                     json::describe(shape) + ".");
  bool empty = false;
  for (size_t k = 0; k < shape.array.size(); ++k) {
    const std::string axis = json::member(what, "shape") + "[" + std::to_string(k) + "]";
    t.shape.push_back(json::as_int(shape.array[k], axis, 0, kMaxExactInt));
    empty |= t.shape.back() == 0;
  }
  // Checked product (a zero axis makes the tensor empty however large the others are); the
  // data_offsets check below then catches any size the file does not hold.
  u64 nbytes = empty ? 0 : item;
  for (size_t k = 0; k < t.shape.size() && !empty; ++k) {
    const u64 d = (u64)t.shape[k];
    if (nbytes > ULLONG_MAX / d)
      throw ValueError(what + " has shape " + shape_text(t.shape) + ", too large for any file.");
    nbytes *= d;
  }

  const json::Value& offs = json::require(v, "data_offsets", what);
  const std::string offs_name = json::member(what, "data_offsets");
  if (!offs.is_array() || offs.array.size() != 2)
    throw ValueError(offs_name + " must be a list [begin, end], got " +
                     (offs.is_array() ? "a list of " + std::to_string(offs.array.size())
                                      : json::describe(offs)) + ".");
  const u64 b = (u64)json::as_int(offs.array[0], offs_name + "[0]", 0, kMaxExactInt);
  const u64 e = (u64)json::as_int(offs.array[1], offs_name + "[1]", 0, kMaxExactInt);
  if (b > e)
    throw ValueError(what + " has data_offsets " + range_str(b, e) +
                     " whose begin is past its end.");
  if (e > buffer)
    throw ValueError(what + " has data_offsets " + range_str(b, e) + " past the end of the " +
                     std::to_string(buffer) + "-byte data buffer (is the file truncated?).");
  if (e - b != nbytes)
    throw ValueError(what + " has shape " + shape_text(t.shape) + " of dtype " + t.dtype +
                     ", which needs " + std::to_string(nbytes) + " bytes, but its data_offsets " +
                     range_str(b, e) + " hold " + std::to_string(e - b) + ".");
  out.file.tensors.push_back(std::move(t));
  out.begin.push_back(b);
  out.end.push_back(e);
}

// Parses and checks the JSON header of a file whose data buffer is `buffer` bytes long.
Layout read_header(const std::string& header, u64 buffer, const std::string& name) {
  // The format requires the header to open with '{'; anything else is not safetensors at all.
  if (header.empty() || header[0] != '{')
    not_safetensors(name, "its header does not start with '{'");
  const json::Value root = json::parse(header, prefix(name) + "the header");
  Layout out;
  for (const auto& kv : root.object) {
    if (kv.first != "__metadata__") {
      add_tensor(out, kv.first, kv.second, buffer, name);
      continue;
    }
    const std::string what = prefix(name) + "'__metadata__'";
    if (!kv.second.is_object())
      throw ValueError(what + " must be an object of strings, got " +
                       json::describe(kv.second) + ".");
    for (const auto& m : kv.second.object)
      out.file.metadata.emplace_back(
          m.first, json::as_string(m.second, what + " entry " + json::quote(m.first)));
  }

  // The tensors must tile the buffer exactly: sorted by offset, each starts where the last ended.
  const std::vector<Tensor>& ts = out.file.tensors;
  out.order.resize(ts.size());
  for (size_t k = 0; k < ts.size(); ++k) out.order[k] = k;
  std::sort(out.order.begin(), out.order.end(), [&](size_t a, size_t c) {
    return out.begin[a] != out.begin[c] ? out.begin[a] < out.begin[c] : out.end[a] < out.end[c];
  });
  u64 pos = 0;
  size_t last = 0;  // the tensor ending at pos, for the overlap message
  for (size_t k : out.order) {
    if (out.begin[k] < pos)
      throw ValueError(prefix(name) + "tensors " + json::quote(ts[last].name) + " and " +
                       json::quote(ts[k].name) + " overlap (data_offsets " +
                       range_str(out.begin[last], out.end[last]) + " and " +
                       range_str(out.begin[k], out.end[k]) + ").");
    if (out.begin[k] > pos)
      throw ValueError(prefix(name) + "bytes " + std::to_string(pos) + " to " +
                       std::to_string(out.begin[k]) + " of the data buffer belong to no " +
                       "tensor (the tensors must cover it exactly).");
    pos = out.end[k];
    last = k;
  }
  if (pos != buffer)
    throw ValueError(prefix(name) + "the last " + std::to_string(buffer - pos) +
                     " bytes of the file belong to no tensor (the tensors must cover the data " +
                     "buffer exactly).");
  return out;
}

// "permission denied": the system's reason, lower-cased to sit inside a sentence.
std::string reason(std::error_code ec) {
  std::string s = ec.message();
  if (!s.empty() && s[0] >= 'A' && s[0] <= 'Z') s[0] = (char)(s[0] - 'A' + 'a');
  return s;
}

}  // namespace

size_t dtype_size(const std::string& dtype) {
  for (const DType& d : kDTypes)
    if (dtype == d.name) return d.size;
  return 0;
}

const std::string* File::meta(const std::string& key) const {
  for (const auto& kv : metadata)
    if (kv.first == key) return &kv.second;
  return nullptr;
}

const Tensor* File::find(const std::string& name) const {
  for (const Tensor& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

File parse(const unsigned char* data, size_t size, const std::string& name) {
  const u64 n = header_length(data, size, name);
  const u64 buffer = size - 8 - n;
  Layout L = read_header(std::string((const char*)data + 8, n), buffer, name);
  const unsigned char* base = data + 8 + n;
  for (size_t k = 0; k < L.file.tensors.size(); ++k)
    L.file.tensors[k].bytes.assign(base + L.begin[k], base + L.end[k]);
  return std::move(L.file);
}

File read(const std::string& path) {
  namespace fs = std::filesystem;
  const std::string pre = prefix(path);
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (st.type() == fs::file_type::not_found) throw ValueError(pre + "no such file.");
  if (ec) throw ValueError(pre + "cannot access the file (" + reason(ec) + ").");
  if (st.type() == fs::file_type::directory)
    throw ValueError(pre + "it is a directory, not a file.");
  if (st.type() != fs::file_type::regular) throw ValueError(pre + "it is not a regular file.");
  const u64 size = fs::file_size(path, ec);
  if (ec) throw ValueError(pre + "cannot access the file (" + reason(ec) + ").");

  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f)
    throw ValueError(pre + "cannot open the file (" +
                     reason(std::error_code(errno, std::generic_category())) + ").");
  // A short read means the file shrank (or failed) after we took its size.
  auto read_exact = [&](void* dst, size_t len) {
    if (len && std::fread(dst, 1, len, f.get()) != len)
      throw ValueError(pre + "reading the file failed (" +
                       (std::ferror(f.get()) ? std::string("I/O error") : "it ended early") + ").");
  };

  unsigned char head[8] = {};
  read_exact(head, (size_t)std::min<u64>(size, 8));
  const u64 n = header_length(head, size, path);
  std::string header((size_t)n, '\0');
  read_exact(&header[0], (size_t)n);
  Layout L = read_header(header, size - 8 - n, path);
  header = std::string();
  // The tensors tile the buffer, so reading them in offset order reads the rest of the file
  // sequentially, with no copy of the whole file in memory.
  for (size_t k : L.order) {
    Tensor& t = L.file.tensors[k];
    t.bytes.resize((size_t)(L.end[k] - L.begin[k]));
    read_exact(t.bytes.data(), t.bytes.size());
  }
  return std::move(L.file);
}

}  // namespace shenjing::safetensors
