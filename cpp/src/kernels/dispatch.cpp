// Chooses the kernel table once, from what the CPU supports (or SHENJING_ISA).
#include <cstdlib>
#include <cstring>

#include "kernels.hpp"

namespace shenjing {
namespace kernels {

namespace generic { void fill_table(KernelTable&); }
#if defined(SHENJING_X86)
namespace avx2 { void fill_table(KernelTable&); }
namespace avx512 { void fill_table(KernelTable&); }
#endif

namespace {

struct Tables {
  KernelTable all[3];
  int count = 0;
  int best = 0;

  Tables() {
    generic::fill_table(all[count++]);
#if defined(SHENJING_X86)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
      avx2::fill_table(all[count++]);
      if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw"))
        avx512::fill_table(all[count++]);
    }
#endif
    best = count - 1;
    if (const char* want = std::getenv("SHENJING_ISA")) {
      for (int i = 0; i < count; ++i)
        if (std::strcmp(all[i].isa, want) == 0) best = i;
    }
  }
};

const Tables& tables() {
  static const Tables t;  // function-local: built on first use, thread-safe
  return t;
}

}  // namespace

const KernelTable& table() {
  const Tables& t = tables();
  return t.all[t.best];
}

int available_tables(const KernelTable** out, int max) {
  const Tables& t = tables();
  int n = 0;
  for (; n < t.count && n < max; ++n) out[n] = &t.all[n];
  return n;
}

}  // namespace kernels
}  // namespace shenjing
