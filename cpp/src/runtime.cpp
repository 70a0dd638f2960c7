// Threads and build information.
#include <omp.h>

#include <string>

#include "kernels/kernels.hpp"
#include "shenjing/errors.hpp"
#include "shenjing/runtime.hpp"

namespace shenjing {

void set_num_threads(int n) {
  if (n < 1) throw ValueError("set_num_threads: n must be >= 1, received " + std::to_string(n) + ".");
  omp_set_num_threads(n);
}

int get_num_threads() { return omp_get_max_threads(); }

const char* isa() { return kernels::table().isa; }

bool all_finite(const float* data, std::size_t n) {
  const unsigned* bits = reinterpret_cast<const unsigned*>(data);
  unsigned bad = 0;
#pragma omp parallel for reduction(| : bad) schedule(static) if (n > (1u << 22))
  for (long long i = 0; i < (long long)n; ++i) bad |= (bits[i] & 0x7f800000u) == 0x7f800000u;
  return bad == 0;
}

std::string build_info() {
  std::string s;
#if defined(__clang__)
  s += "clang " __clang_version__;
#elif defined(__GNUC__)
  s += "gcc " __VERSION__;
#endif
#if defined(SHENJING_X86)
  s += "; kernels: generic, avx2, avx512";
#else
  s += "; kernels: generic";
#endif
  s += "; openmp " + std::to_string(_OPENMP);
  return s;
}

}  // namespace shenjing
