// Gathering a batch's rows out of a data set, converting them to float32 on the way.
#pragma once
#include <cstddef>

#include "shenjing/tensor.hpp"

namespace shenjing {

// dst[i] = float32(src row idx[i]) for i < n (rows 0..n-1 of src when idx is null); a row is
// `row` values. Returns false when a float64 value converts to a non-finite float32 (NaN or
// inf in the input, or beyond float32's range); dst is then unspecified. Float32 rows are
// copied unchecked: the caller checks float32 input once per call.
bool gather_rows_f32(ArrayRef src, std::size_t row, const long long* idx, int n, float* dst);

}  // namespace shenjing
