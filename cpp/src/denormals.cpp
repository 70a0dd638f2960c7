// See denormals.hpp.
#include "denormals.hpp"

#include <omp.h>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define SJ_MXCSR 1
#endif

namespace shenjing {
namespace {

#if SJ_MXCSR
constexpr unsigned kFtzDaz = 0x8040;  // flush-to-zero (bit 15) and denormals-are-zero (bit 6)
// Each OpenMP worker's mode before the guard set it (restored at the guard's end).
thread_local unsigned worker_saved = 0;
thread_local bool worker_set = false;
#endif

}  // namespace

DenormalGuard::DenormalGuard(bool on) : on_(on) {
#if SJ_MXCSR
  if (!on_) return;
  saved_ = _mm_getcsr();
  _mm_setcsr(saved_ | kFtzDaz);
  if (omp_get_max_threads() > 1) {
#pragma omp parallel
    if (omp_get_thread_num() != 0) {  // thread 0 is this one
      worker_saved = _mm_getcsr();
      worker_set = true;
      _mm_setcsr(worker_saved | kFtzDaz);
    }
  }
#endif
}

DenormalGuard::~DenormalGuard() {
#if SJ_MXCSR
  if (!on_) return;
  if (omp_get_max_threads() > 1) {
#pragma omp parallel
    if (worker_set) {  // other models and libraries on these threads see their own mode
      _mm_setcsr(worker_saved);
      worker_set = false;
    }
  }
  _mm_setcsr(saved_);
#endif
}

}  // namespace shenjing
