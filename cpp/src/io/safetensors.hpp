// Reader for the safetensors format (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length, a JSON header naming each tensor's dtype, shape and byte range,
// then one byte buffer that the tensors tile exactly. Every size in the file is checked before it
// is used, so a damaged or hostile file gives a ValueError, never a crash or an unbounded
// allocation.
#pragma once
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "shenjing/errors.hpp"

namespace shenjing::safetensors {

constexpr unsigned long long kMaxHeaderBytes = 100000000;  // as in the reference implementation

struct Tensor {
  std::string name, dtype;           // dtype as in the file, e.g. "F32"
  std::vector<long long> shape;
  std::vector<unsigned char> bytes;  // raw little-endian data, size = prod(shape) * dtype size
};

struct File {
  std::vector<std::pair<std::string, std::string>> metadata;  // "__metadata__", in file order
  std::vector<Tensor> tensors;                               // in file order
  const std::string* meta(const std::string& key) const;     // nullptr if absent
  const Tensor* find(const std::string& name) const;         // nullptr if absent
};

// Bytes per element of a safetensors dtype ("F32" -> 4); 0 if `dtype` is not one.
size_t dtype_size(const std::string& dtype);

// Reads and validates a whole file. Throws ValueError naming the path and the problem, e.g.
// "Cannot load 'x.safetensors': the file is truncated (header says 1000 bytes, file has 12)."
File read(const std::string& path);
// Same, from bytes in memory. `name` is used in messages.
File parse(const unsigned char* data, size_t size, const std::string& name);

}  // namespace shenjing::safetensors
