// Model::load: a file written by Python's model.save() -> an inference-ready Model, no Python.
//
// The file is safetensors (docs/ARCHITECTURE.md, "Model files"): metadata "format" =
// "shenjing", "model_config" = the Keras JSON of the Sequential or Functional model (the
// functional graph is read by io/functional_config.cpp), and one F32 tensor
// "layers.<i>.<param>" per parameter of layer i (InputLayers not counted, a nested model's
// layers counted inline). Tensors named "optimizer.*" hold training state, which inference
// does not need. A file of a model with traced custom layers also has "core_graph" (read by
// io/core_graph.cpp): the graph the core runs, used instead of model_config, whose Keras
// config names Python classes.
#include <cmath>
#include <cstring>
#include <map>

#include "io/json.hpp"
#include "io/layer_config.hpp"
#include "io/safetensors.hpp"
#include "shenjing/model.hpp"

namespace shenjing {
namespace {

using json::Value;
using Kind = Value::Kind;

// The model's config object and whether it is a Sequential model (else Functional).
std::pair<const Value*, bool> model_config(const Value& root, const std::string& where) {
  const Value* cls = root.find("class_name");
  if (root.kind != Kind::Object || !cls || cls->kind != Kind::String)
    throw ValueError(where + ": the model config has no 'class_name'.");
  const bool sequential = cls->string == "Sequential";
  if (!sequential && cls->string != "Functional" && cls->string != "Model")
    throw ValueError(where + ": only Sequential and Functional models can be loaded, the file "
                     "holds a '" + cls->string.substr(0, 64) + "'.");
  const Value* cfg = root.find("config");
  const Value* layers = cfg ? cfg->find("layers") : nullptr;
  if (!layers || layers->kind != Kind::Array)
    throw ValueError(where + ": the model config has no 'layers' list (a Sequential or "
                     "Functional config has one).");
  return {cfg, sequential};
}

template <class T>
std::string dims(const std::vector<T>& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}

bool is_input_layer(const Value& spec) {
  const Value* cls = spec.find("class_name");
  return cls && cls->kind == Kind::String && cls->string == "InputLayer";
}

// Input shape: from the InputLayer entry, else from build_config.input_shape (Keras writes
// one of the two for every built Sequential model).
Shape config_input_shape(const Value& root, const Value& layers, const std::string& where) {
  if (!layers.array.empty() && is_input_layer(layers.array[0]))
    return input_shape_from_config(layers.array[0]);
  const Value* build = root.find("build_config");
  const Value* shape = build ? build->find("input_shape") : nullptr;
  if (!shape) throw ValueError(where + ": the model config has no input shape.");
  Value as_input;  // reuse the InputLayer reader on {"config": {"batch_shape": shape}}
  as_input.kind = Kind::Object;
  Value cfg;
  cfg.kind = Kind::Object;
  cfg.object.emplace_back("batch_shape", *shape);
  as_input.object.emplace_back("config", std::move(cfg));
  return input_shape_from_config(as_input);
}

}  // namespace

Model Model::load(const std::string& path) { return load(safetensors::read(path), path); }

Model Model::load(const safetensors::File& file, const std::string& path) {
  const std::string where = "Cannot load '" + path + "'";
  try {
    return from_file(file, where);
  } catch (const ValueError& e) {  // config errors name the layer; add the file
    const std::string msg = e.what();
    if (msg.rfind(where, 0) == 0) throw;
    throw ValueError(where + ": " + msg);
  }
}

Model Model::from_file(const safetensors::File& file, const std::string& where) {
  const std::string* format = file.meta("format");
  if (!format || *format != "shenjing")
    throw ValueError(where + ": it is a safetensors file, but not a shenjing model (its "
                     "metadata has no format 'shenjing').");
  const std::string* config = file.meta("model_config");
  const std::string* graph = file.meta("core_graph");
  if (!config && !graph)
    throw ValueError(where + ": it holds weights only (written by save_weights); build the "
                     "model and call model.load_weights(path), or save the "
                     "whole model with model.save(path).");

  // Every declared param is matched with its tensor before the model allocates anything.
  // found[w]: the tensors `layers.<w>.*` of the layer with weight index w, in param order (a
  // map: a core_graph names any w, and nothing may be allocated by the number).
  std::map<size_t, std::vector<const safetensors::Tensor*>> found;
  auto check = [&](size_t index, const Layer& l) {
    for (const Param& p : l.params()) {
      const std::string name = "layers." + std::to_string(index) + "." + p.name;
      const safetensors::Tensor* t = file.find(name);
      const std::string label = where + ": weight '" + name + "' of layer '" + l.name() +
                                "' (" + l.type() + ")";
      if (!t) throw ValueError(label + " is missing.");
      if (t->dtype != "F32")
        throw ValueError(label + " must be F32, the file has " + t->dtype + ".");
      if (t->shape != std::vector<long long>(p.shape.begin(), p.shape.end()))
        throw ValueError(label + " has shape " + dims(t->shape) + ", but the "
                         "architecture needs " + dims(p.shape) + ".");
      found[index].push_back(t);
    }
  };
  Model m;
  std::vector<long long> weight_of;  // per core layer: its weight index (-1: no params)
  if (graph) {
    weight_of = m.build_core_graph(json::parse(*graph, where + ": core_graph"), check);
  } else {
    const Value root = json::parse(*config, where + ": model_config");
    const auto [cfg, sequential] = model_config(root, where);
    if (sequential) {
      const Value& layers = *cfg->find("layers");
      m.add_input(config_input_shape(root, layers, where));
      for (size_t k = 0; k < layers.array.size(); ++k) {
        if (k == 0 && is_input_layer(layers.array[0])) continue;
        m.outputs_ = {m.append(layer_from_config(layers.array[k], m.output_shape()),
                               m.outputs_, check)};
      }
    } else {
      m.build_functional(*cfg, check);  // core layer i is weight index i
    }
    for (size_t i = 0; i < m.layers_.size(); ++i) weight_of.push_back((long long)i);
  }
  size_t used = 0;
  for (size_t i = 0; i < m.layers_.size(); ++i) {
    std::vector<Param>& params = m.layers_[i]->params();
    if (params.empty()) continue;  // (build_core_graph refused params without an index)
    const std::vector<const safetensors::Tensor*>& tensors = found.at((size_t)weight_of[i]);
    for (size_t k = 0; k < params.size(); ++k) {
      const safetensors::Tensor* t = tensors.at(k);
      std::memcpy(params[k].value.data(), t->bytes.data(), t->bytes.size());
      for (float v : params[k].value)
        if (!std::isfinite(v))
          throw ValueError(where + ": weight '" + t->name + "' contains NaN or infinity.");
    }
    used += params.size();
  }
  size_t stored = 0;
  for (const safetensors::Tensor& t : file.tensors) stored += t.name.rfind("layers.", 0) == 0;
  if (stored != used)
    throw ValueError(where + ": it has " + std::to_string(stored) + " layer weights, but its "
                     "architecture uses " + std::to_string(used) + ".");
  return m;
}

}  // namespace shenjing
