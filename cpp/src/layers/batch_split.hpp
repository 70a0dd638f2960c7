// Splitting a batch over the threads by samples, as Conv and ConvTranspose do (see conv.cpp).
// Each thread runs its own samples [b0, b1) in cache-sized chunks with single-threaded kernels
// and writes partial weight gradients into its own workspace; the partials are then summed in
// thread order, so the result does not depend on scheduling (deterministic, no atomics).
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include <omp.h>

namespace shenjing::batch_split {

// Grows a grow-only workspace vector to at least n elements (no allocation in steady state).
template <class T>
void grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

// Samples per chunk: enough rows for an efficient GEMM, few enough that a chunk's col and
// output (chunk_floats floats, sample_floats per sample) stay in cache.
inline int chunk_samples(int n, size_t sample_floats, size_t chunk_floats) {
  return (int)std::max<size_t>(1, std::min<size_t>(n, chunk_floats / sample_floats));
}

// Threads to split n samples over: one (whose kernels then use all threads) inside a parallel
// region, or when a sample does not fit a chunk; otherwise one per sample up to the maximum.
inline int threads(int n, size_t sample_floats, size_t chunk_floats) {
  if (omp_in_parallel() || sample_floats > chunk_floats) return 1;
  return std::max(1, std::min(n, omp_get_max_threads()));
}

// Runs fn(t, b0, b1) for t < nt, thread t on samples [n*t/nt, n*(t+1)/nt); nt == 1 runs on
// the calling thread without a parallel region.
template <class Fn>
void run(int n, int nt, Fn&& fn) {
  if (nt == 1) {
    fn(0, 0, n);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num();
    fn(t, (int)((long)n * t / nt), (int)((long)n * (t + 1) / nt));
  }
}

// dst[i] = sum over t < nt, in thread order, of part(t)[i], for i < len.
template <class Part>
void sum(int nt, size_t len, Part&& part, float* dst) {
  for (size_t i = 0; i < len; ++i) {
    float acc = 0.0f;
    for (int t = 0; t < nt; ++t) acc += part(t)[i];
    dst[i] = acc;
  }
}

// The same for transposed partials: part(t) is (cols x rows), dst is (rows x cols), both
// row-major; dst[k * cols + c] = sum over t, in thread order, of part(t)[c * rows + k].
template <class Part>
void sum_transposed(int nt, int rows, int cols, Part&& part, float* dst) {
  for (int k = 0; k < rows; ++k)
    for (int c = 0; c < cols; ++c) {
      float acc = 0.0f;
      for (int t = 0; t < nt; ++t) acc += part(t)[(size_t)c * rows + k];
      dst[(size_t)k * cols + c] = acc;
    }
}

}  // namespace shenjing::batch_split
