// See denormals.hpp.
#include "denormals.hpp"

#include <omp.h>

#include <atomic>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define SJ_MXCSR 1
#endif

namespace shenjing {
namespace {

#if SJ_MXCSR
constexpr unsigned kFtzDaz = 0x8040;  // flush-to-zero (bit 15) and denormals-are-zero (bit 6)
// The largest OpenMP team whose threads have been set (a larger team has new threads).
std::atomic<int> workers_set{0};
#endif

}  // namespace

DenormalGuard::DenormalGuard(bool on) : on_(on) {
#if SJ_MXCSR
  if (!on_) return;
  saved_ = _mm_getcsr();
  _mm_setcsr(saved_ | kFtzDaz);
  const int team = omp_get_max_threads();
  if (team > 1 && workers_set.load() < team) {
#pragma omp parallel num_threads(team)
    _mm_setcsr(_mm_getcsr() | kFtzDaz);
    workers_set.store(team);
  }
#endif
}

DenormalGuard::~DenormalGuard() {
#if SJ_MXCSR
  if (on_) _mm_setcsr(saved_);
#endif
}

}  // namespace shenjing
