// Batch gathering with per-batch type conversion: the model's only reader of user data sets.
#include "rows.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace shenjing {

std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64: case DType::U64: case DType::I64: return 8;
    case DType::F32: case DType::U32: case DType::I32: return 4;
    case DType::U16: case DType::I16: return 2;
    case DType::U8: case DType::I8: case DType::Bool: return 1;
  }
  return 4;
}

namespace {

// Converts one row. Only float64 is checked, as the conversion itself can overflow there:
// integers are always finite in float32 (the widest, 2^64, is far below its 3.4e38), and
// float32 rows are copied as they are (the caller checks its float32 input once per call,
// not once per batch on the training loop's hot path).
template <typename T>
bool convert_row(const T* src, std::size_t row, float* dst) {
  if constexpr (std::is_same_v<T, float>) {
    std::memcpy(dst, src, row * sizeof(float));
  } else {
    for (std::size_t j = 0; j < row; ++j) dst[j] = static_cast<float>(src[j]);
  }
  if constexpr (std::is_same_v<T, double>) {
    uint32_t bad = 0;  // an exponent of all ones: NaN or inf
    for (std::size_t j = 0; j < row; ++j) {
      uint32_t bits;
      std::memcpy(&bits, dst + j, 4);
      bad |= (bits & 0x7f800000u) == 0x7f800000u;
    }
    return !bad;
  }
  return true;
}

template <typename T>
bool gather(const T* src, std::size_t row, const long long* idx, int n, float* dst) {
  int ok = 1;
#pragma omp parallel for schedule(static) reduction(&& : ok) if ((std::size_t)n * row > 65536)
  for (int i = 0; i < n; ++i) {
    const std::size_t r = idx ? (std::size_t)idx[i] : (std::size_t)i;
    ok = convert_row(src + r * row, row, dst + (std::size_t)i * row) && ok;
  }
  return ok;
}

}  // namespace

bool gather_rows_f32(ArrayRef src, std::size_t row, const long long* idx, int n, float* dst) {
  switch (src.dtype) {
    case DType::F32: return gather(static_cast<const float*>(src.data), row, idx, n, dst);
    case DType::F64: return gather(static_cast<const double*>(src.data), row, idx, n, dst);
    case DType::U8: return gather(static_cast<const uint8_t*>(src.data), row, idx, n, dst);
    case DType::Bool: return gather(static_cast<const uint8_t*>(src.data), row, idx, n, dst);
    case DType::I8: return gather(static_cast<const int8_t*>(src.data), row, idx, n, dst);
    case DType::U16: return gather(static_cast<const uint16_t*>(src.data), row, idx, n, dst);
    case DType::I16: return gather(static_cast<const int16_t*>(src.data), row, idx, n, dst);
    case DType::U32: return gather(static_cast<const uint32_t*>(src.data), row, idx, n, dst);
    case DType::I32: return gather(static_cast<const int32_t*>(src.data), row, idx, n, dst);
    case DType::U64: return gather(static_cast<const uint64_t*>(src.data), row, idx, n, dst);
    case DType::I64: return gather(static_cast<const int64_t*>(src.data), row, idx, n, dst);
  }
  return false;
}

}  // namespace shenjing
