// A float32 tensor, row-major: what the C++ inference API returns; and ArrayRef, a borrowed
// array of samples in any of the numeric types inputs arrive in.
#pragma once
#include <cstddef>
#include <vector>

namespace shenjing {

struct Tensor {
  std::vector<int> shape;   // with the batch axis first when the input had one
  std::vector<float> data;  // product(shape) values
  std::size_t size() const { return data.size(); }
  float& operator[](std::size_t i) { return data[i]; }
  const float& operator[](std::size_t i) const { return data[i]; }
};

// Element types of inputs. A model converts each batch to float32 while it gathers the batch's
// rows, so a data set of bytes (uint8 images) is never copied whole as floats.
enum class DType : int { F32 = 0, F64, U8, I8, U16, I16, U32, I32, U64, I64, Bool };
std::size_t dtype_size(DType t);

// A borrowed, C-contiguous array of samples of one of those types (a float* converts to it).
struct ArrayRef {
  const void* data = nullptr;
  DType dtype = DType::F32;
  ArrayRef(const float* p) : data(p) {}  // NOLINT: implicit on purpose
  ArrayRef(const void* p, DType t) : data(p), dtype(t) {}
  // The same array from row `row0` on, for rows of `row` values.
  ArrayRef offset(std::size_t row0, std::size_t row) const {
    return {static_cast<const char*>(data) + row0 * row * dtype_size(dtype), dtype};
  }
};

}  // namespace shenjing
