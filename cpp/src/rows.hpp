// Gathering a batch's rows out of a data set, converting them to float32 on the way.
#pragma once
#include <cstddef>

#include "shenjing/tensor.hpp"

namespace shenjing {

// dst[i] = float32(src row idx[i]) for i < n (rows 0..n-1 of src when idx is null); a row is
// `row` values. Returns false when a converted value is not finite (NaN or inf in the input,
// or a float64 beyond float32's range); dst is then unspecified.
bool gather_rows_f32(ArrayRef src, std::size_t row, const long long* idx, int n, float* dst);

}  // namespace shenjing
