// Keras's TimeDistributed config -> the core wrapper around the core layer of its "layer" spec
// (Keras's serialized inner layer: {module, class_name, config, registered_name}). The inner
// spec is decoded by layer_from_config as any layer, on the per-sample shape without the time
// axis (what the inner layer sees: BatchNormalization checks its axis against it).
#include "io/layer_config_wrapper.hpp"

#include <string>

#include "io/layer_config.hpp"

namespace shenjing {
namespace {

// Keras allows TimeDistributed(TimeDistributed(...)); a deeper chain than this is refused
// rather than decoded recursively (a file could nest them as deep as the JSON reader allows).
constexpr int kMaxWrapperNesting = 4;

}  // namespace

std::unique_ptr<Layer> time_distributed_from_config(const config::Fields& f, const Shape& input) {
  using json::Value;
  using Kind = Value::Kind;
  const Value* spec = f.get("layer");
  if (!spec || spec->kind != Kind::Object)
    f.fail("layer", "a layer config ({\"class_name\": ..., \"config\": {...}})", spec);
  // This wrapper and the ones inside it, counted before any is built.
  int depth = 1;
  for (const Value* s = spec; s && s->kind == Kind::Object; ++depth) {
    const Value* cls = s->find("class_name");
    if (!cls || cls->kind != Kind::String || cls->string != "TimeDistributed") break;
    if (depth >= kMaxWrapperNesting)
      throw ValueError("Layer '" + f.name() + "' (TimeDistributed): TimeDistributed layers are "
                       "nested more than " + std::to_string(kMaxWrapperNesting) + " deep.");
    const Value* cfg = s->find("config");
    s = cfg && cfg->kind == Kind::Object ? cfg->find("layer") : nullptr;
  }
  const Value* cls = spec->find("class_name");
  if (cls && cls->kind == Kind::String &&
      (cls->string == "InputLayer" || cls->string == "Functional" ||
       cls->string == "Sequential" || cls->string == "Model"))
    throw ValueError("Layer '" + f.name() + "' (TimeDistributed): wrapping a " + cls->string +
                     " is not supported; wrap a layer.");
  const Shape child = input.empty() ? Shape{} : Shape(input.begin() + 1, input.end());
  try {
    return make_time_distributed(layer_from_config(*spec, child));
  } catch (const ValueError& e) {
    throw ValueError("Layer '" + f.name() + "' (TimeDistributed): " + e.what());
  }
}

}  // namespace shenjing
