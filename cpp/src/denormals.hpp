// Denormal floats flushed to zero (x86 MXCSR FTZ and DAZ) while a model with recurrent layers
// runs a batch: sigmoid gates saturate towards 0 and products of small gates and states fall
// into the denormal range, where every operation costs ~100 cycles (oneDNN issue 561 measured
// 20x slower LSTM training). The calling thread and the OpenMP workers get their own modes
// back when the guard ends (one parallel region each way: microseconds, against a recurrent
// batch's milliseconds), so other models' results never depend on which ran before.
// Elsewhere (arm64) nothing changes.
#pragma once

namespace shenjing {

class DenormalGuard {
 public:
  explicit DenormalGuard(bool on);
  ~DenormalGuard();
  DenormalGuard(const DenormalGuard&) = delete;
  DenormalGuard& operator=(const DenormalGuard&) = delete;

 private:
  bool on_;
  unsigned saved_ = 0;
};

}  // namespace shenjing
