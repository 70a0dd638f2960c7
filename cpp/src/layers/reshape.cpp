// Reshape and Flatten: a new per-sample shape over the same row-major data. The model passes
// the buffer through, so these cost nothing at run time.
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
    const long long total = shape_size(input);
    long long known = 1;
    int unknown = -1;
    for (size_t i = 0; i < target_.size(); ++i) {
      if (target_[i] == -1 && unknown < 0) unknown = (int)i;
      else if (target_[i] <= 0) fail(input);
      else known *= target_[i];
    }
    out_ = target_;
    if (unknown >= 0) {
      if (known == 0 || total % known != 0) fail(input);
      out_[unknown] = (int)(total / known);
    }
    if (shape_size(out_) != total) fail(input);
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
