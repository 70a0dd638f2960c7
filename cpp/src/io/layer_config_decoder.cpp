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
  ConvTransposeOptions o;
  config::conv_window_fields(f, rank, o);
  if (f.get("output_padding")) {  // null: the output length is inferred (Keras's default)
    o.has_output_padding = true;
    window(f, "output_padding", rank, 0, nullptr, o.output_padding);
    if (rank == 1) o.output_padding[0] = 0;
  }
  o.padding = f.padding(type, false);
  config::conv_output_fields(f, o);
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
  if (rank == 2) f.channels_last();
  const int ones[2] = {1, 1}, zeros[2] = {0, 0};  // Keras: Cropping1D (1, 1), Cropping2D 0
  config::borders(f, "cropping", rank, rank == 1 ? ones : zeros, o);
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
