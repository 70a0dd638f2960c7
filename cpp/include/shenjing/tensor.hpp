// A float32 tensor, row-major: what the C++ inference API returns.
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

}  // namespace shenjing
