// Keras configs of the decoder layers -> core layers; see layer_config_decoder.hpp. Every
// field is checked here (type and range) so a hostile file gives a ValueError naming the
// layer and the field; the layers themselves check what depends on the input shape.
#include "io/layer_config_decoder.hpp"

#include <cctype>
#include <vector>

namespace shenjing {
namespace {

using config::Fields;
using config::kMaxDim;
using config::kMaxRank;
using config::window;
using json::Value;
using Kind = Value::Kind;

std::unique_ptr<Layer> conv_transpose(const Fields& f, int rank, const char* type) {
  f.channels_last();
  const int ones[2] = {1, 1};
  ConvTransposeOptions o;
  o.rank = rank;
  o.filters = f.integer("filters", 1, kMaxDim);
  window(f, "kernel_size", rank, 1, nullptr, o.kernel);
  window(f, "strides", rank, 1, ones, o.strides);
  window(f, "dilation_rate", rank, 1, ones, o.dilation);
  if (f.get("output_padding")) {  // null: the output length is inferred (Keras's default)
    o.has_output_padding = true;
    window(f, "output_padding", rank, 0, nullptr, o.output_padding);
    if (rank == 1) o.output_padding[0] = 0;
  }
  o.padding = f.padding(type, false);
  o.activation = f.activation();
  o.activation_alpha = activation_default_alpha(o.activation);
  o.use_bias = f.boolean("use_bias", true);
  f.regularizer("kernel_regularizer", &o.kernel_l1, &o.kernel_l2);
  f.regularizer("bias_regularizer", &o.bias_l1, &o.bias_l2);
  try {
    return make_conv_transpose(o);
  } catch (const ValueError& e) {  // output_padding vs strides, strides vs dilation
    throw ValueError("Layer '" + f.name() + "' (" + type + "): " +
                     std::string(e.what()).substr(std::string(type).size() + 2));
  }
}

std::unique_ptr<Layer> upsampling(const Fields& f, int rank) {
  UpSamplingOptions o;
  o.rank = rank;
  if (rank == 1) {
    const int two = 2;
    o.size[0] = 1;
    o.size[1] = f.integer("size", 1, kMaxDim, &two);
    return make_upsampling(o);
  }
  f.channels_last();
  const int twos[2] = {2, 2};
  window(f, "size", 2, 1, twos, o.size);
  std::string interp = f.string("interpolation", "nearest");
  for (char& c : interp) c = (char)std::tolower((unsigned char)c);
  if (interp != "nearest" && interp != "bilinear")
    f.fail("interpolation", "'nearest' or 'bilinear'", f.get("interpolation"));
  o.bilinear = interp == "bilinear";
  return make_upsampling(o);
}

std::unique_ptr<Layer> cropping(const Fields& f, int rank) {
  CroppingOptions o;
  o.rank = rank;
  int p[4] = {0, 0, 0, 0};  // top, bottom, left, right
  if (rank == 1) {
    const int ones[2] = {1, 1};
    f.ints("cropping", 2, 0, kMaxDim, ones, p + 2);
  } else {
    f.channels_last();
    const Value* v = f.get("cropping");
    if (v && v->kind == Kind::Array && v->array.size() == 2 && v->array[0].kind == Kind::Array) {
      // ((top, bottom), (left, right))
      for (int axis = 0; axis < 2; ++axis) {
        const Value& pr = v->array[axis];
        if (pr.kind != Kind::Array || pr.array.size() != 2)
          f.fail("cropping", "an integer, (rows, cols) or ((top, bottom), (left, right))", v);
        for (int k = 0; k < 2; ++k)
          p[2 * axis + k] = f.integer_value("cropping", pr.array[k], 0, kMaxDim);
      }
    } else {  // an int or (rows, cols): symmetric
      const int zeros[2] = {0, 0};
      int rc[2];
      f.ints("cropping", 2, 0, kMaxDim, zeros, rc);
      p[0] = p[1] = rc[0];
      p[2] = p[3] = rc[1];
    }
  }
  o.top = p[0];
  o.bottom = p[1];
  o.left = p[2];
  o.right = p[3];
  return make_cropping(o);
}

std::unique_ptr<Layer> permute(const Fields& f) {
  const Value* v = f.get("dims");
  const char* want = "a permutation of 1, ..., k (k from 1 to 8)";
  if (!v || v->kind != Kind::Array || v->array.empty() || (int)v->array.size() > kMaxRank)
    f.fail("dims", want, v);
  std::vector<int> dims;
  std::vector<char> seen(v->array.size(), 0);
  for (const Value& d : v->array) {
    const int k = f.integer_value("dims", d, 1, (int)v->array.size());
    if (seen[k - 1]) f.fail("dims", want, v);
    seen[k - 1] = 1;
    dims.push_back(k);
  }
  return make_permute(dims);
}

}  // namespace

std::unique_ptr<Layer> decoder_layer_from_config(const std::string& cls, const Fields& f) {
  if (cls == "Conv2DTranspose") return conv_transpose(f, 2, "Conv2DTranspose");
  if (cls == "Conv1DTranspose") return conv_transpose(f, 1, "Conv1DTranspose");
  if (cls == "UpSampling2D") return upsampling(f, 2);
  if (cls == "UpSampling1D") return upsampling(f, 1);
  if (cls == "Cropping2D") return cropping(f, 2);
  if (cls == "Cropping1D") return cropping(f, 1);
  if (cls == "RepeatVector") return make_repeat_vector(f.integer("n", 1, kMaxDim));
  if (cls == "Permute") return permute(f);
  if (cls == "Identity") return make_identity();
  return nullptr;
}

}  // namespace shenjing
