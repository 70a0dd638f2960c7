// Reshape and Flatten: a new per-sample shape over the same row-major data. The model passes
// the buffer through, so these cost nothing at run time.
#include <climits>
#include <string>

#include "shenjing/layers.hpp"

namespace shenjing {
namespace {

class Reshape final : public Layer {
 public:
  Reshape(const Shape& target, const char* type_name) : target_(target), type_(type_name) {}
  const char* type() const override { return type_; }
  bool passthrough(const RunContext&) const override { return true; }

  void build(const Shape& input) override {
    // shape_size saturates instead of overflowing (targets come from configs and files), and
    // a saturated product never equals the real size of an input.
    const long long total = shape_size(input);
    Shape known_dims;
    int unknown = -1;
    for (size_t i = 0; i < target_.size(); ++i) {
      if (target_[i] == -1 && unknown < 0) unknown = (int)i;
      else if (target_[i] <= 0) fail(input);
      else known_dims.push_back(target_[i]);
    }
    const long long known = shape_size(known_dims);  // >= 1
    Shape out = target_;
    if (unknown >= 0) {
      if (total % known != 0 || total / known > INT_MAX) fail(input);
      out[unknown] = (int)(total / known);
    }
    if (shape_size(out) != total) fail(input);
    out_ = out;
    in_ = input;
  }
  void forward(const float*, float*, int, const RunContext&) override {}
  void backward(const float*, const float*, const float*, float*, int,
                const RunContext&) override {}

 private:
  [[noreturn]] void fail(const Shape& input) const {
    std::string t;
    for (int d : target_) t += (t.empty() ? "" : ", ") + std::to_string(d);
    throw ValueError("Layer '" + name_ + "' (" + type_ + ") cannot reshape input of shape " +
                     shape_str(input) + " (" + std::to_string(shape_size(input)) +
                     " values per sample) to target shape (" + t + ").");
  }
  Shape target_;
  const char* type_;
};

}  // namespace

std::unique_ptr<Layer> make_reshape(const Shape& target, const char* type_name) {
  return std::make_unique<Reshape>(target, type_name);
}

}  // namespace shenjing
