// Kernels compiled with -mavx512f and friends (see cpp/CMakeLists.txt).
#define SJ_ISA avx512
#include "isa_body.inc"
