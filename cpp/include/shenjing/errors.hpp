// Exceptions thrown by the core. The Python binding maps ValueError -> ValueError and
// TypeError -> TypeError; C++ users catch them as std::invalid_argument / std::runtime_error.
#pragma once
#include <stdexcept>
#include <string>
#include <vector>

namespace shenjing {

struct ValueError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

struct TypeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

using Shape = std::vector<int>;  // per-sample shape, without the batch axis

// "(None, 28, 28)": how Keras prints a batched shape.
std::string shape_str(const Shape& s);
// Number of elements of a per-sample shape; saturates at LLONG_MAX (never overflows).
long long shape_size(const Shape& s);

}  // namespace shenjing
