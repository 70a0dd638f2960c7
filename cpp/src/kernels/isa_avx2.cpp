// Kernels compiled with -mavx2 -mfma (see cpp/CMakeLists.txt).
#define SJ_ISA avx2
#include "isa_body.inc"
