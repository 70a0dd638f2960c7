// Baseline x86-64 / any-CPU build of the kernels; the compiler vectorises what it can.
#define SJ_ISA generic
#include "isa_body.inc"
