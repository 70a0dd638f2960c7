// Process-wide settings: threads and what the build/CPU provides.
#pragma once
#include <string>

namespace shenjing {

void set_num_threads(int n);  // n >= 1
int get_num_threads();
const char* isa();            // kernel set in use: "generic", "avx2" or "avx512"
std::string build_info();     // compiler and flags summary

}  // namespace shenjing
