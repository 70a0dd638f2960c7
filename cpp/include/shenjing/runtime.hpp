// Process-wide settings: threads and what the build/CPU provides.
#pragma once
#include <cstddef>
#include <string>

namespace shenjing {

void set_num_threads(int n);  // n >= 1
int get_num_threads();
const char* isa();            // kernel set in use: "generic", "avx2" or "avx512"
std::string build_info();     // compiler and flags summary
// True when none of the n values is NaN or infinite (a parallel scan of the exponent bits).
bool all_finite(const float* data, std::size_t n);

}  // namespace shenjing
