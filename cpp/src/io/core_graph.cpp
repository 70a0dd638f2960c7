// Model::build_core_graph: the graph of a file's "core_graph" metadata.
//
// Python writes it for models whose Keras config names Python classes (traced custom layers,
// subclassed models): C++ cannot rebuild those from model_config, so the file also holds the
// graph exactly as Python handed it to the core (Model._emit: add_input, add_node,
// add_shared_node, set_outputs), and a native program runs the model without the classes.
//
//   {"inputs": [[28, 28, 1], [4]],     per-sample input shapes, model-input order: ids 0..k-1
//    "nodes": [                        in order; node j makes tensor id k + j
//      {"layer": <layer config>, "inputs": [0], "weights": 0},   a new core layer
//      {"shared": 0, "inputs": [5]}],  another node of the 1st core layer ("layer" entries)
//    "outputs": [6]}
//
// A "layer" is what Python passes to _core.Model.add_node (a Keras layer config, or
// {"class_name": "Op", ...} for a primitive op). "weights" is the file weight index w of its
// params, `layers.<w>.<param>`; -1 or absent: it must have no params. The text is untrusted:
// ids must name tensors already made (so there are no cycles), counts are capped, and each
// layer's params are matched with the file (through `check`) before they are allocated.
#include <climits>
#include <set>
#include <string>
#include <vector>

#include "io/config_fields.hpp"
#include "io/json.hpp"
#include "io/layer_config.hpp"
#include "shenjing/model.hpp"

namespace shenjing {
namespace {

using json::Value;
using Kind = Value::Kind;

constexpr size_t kMaxNodes = size_t(1) << 16;  // as a functional config's calls; inputs too
constexpr size_t kMaxNodeInputs = 64;          // as _core.op_output_shape takes
constexpr long long kMaxWeight = INT_MAX;  // a name, never a size: nothing is allocated by it

const Value& list_field(const Value& obj, const std::string& key, const std::string& where,
                        size_t lo, size_t hi) {
  const Value& v = json::require(obj, key, where);
  if (v.kind != Kind::Array || v.array.size() < lo || v.array.size() > hi)
    throw ValueError(json::member(where, key) + " must be a list of " + std::to_string(lo) +
                     " to " + std::to_string(hi) + " entries, received " + json::describe(v) +
                     (v.kind == Kind::Array ? " of " + std::to_string(v.array.size()) : "") +
                     ".");
  return v;
}

// Tensor ids, each of a tensor already made (ids 0..made-1): a node can only read tensors of
// the inputs and of nodes before it, so the graph is in topological order by construction.
std::vector<int> tensor_ids(const Value& list, const std::string& what, size_t made) {
  std::vector<int> ids;
  for (const Value& v : list.array) {
    const long long id = json::as_int(v, what + ": tensor id", 0, INT_MAX);
    if (id >= (long long)made)
      throw ValueError(what + ": tensor " + std::to_string(id) + " is not made before it "
                       "(there are " + std::to_string(made) + " so far: the model inputs, "
                       "then one per node in order).");
    ids.push_back((int)id);
  }
  return ids;
}

// A per-sample input shape, by an InputLayer's rules: 1 to 8 axes, each in [1, 2^24]
// (add_input then caps the size at 2^28 values).
Shape graph_input_shape(const Value& v, const std::string& what) {
  if (v.kind != Kind::Array || v.array.empty() || v.array.size() > (size_t)config::kMaxRank)
    throw ValueError(what + " must be a list of 1 to 8 positive sizes, received " +
                     json::describe(v) + ".");
  Shape s;
  for (const Value& d : v.array) s.push_back((int)json::as_int(d, what, 1, config::kMaxDim));
  return s;
}

// Runs `f`; a ValueError from the layer code gets the node's position in front.
template <class F>
auto at_node(const std::string& what, F&& f) {
  try {
    return f();
  } catch (const ValueError& e) {
    throw ValueError(what + ": " + e.what());
  }
}

}  // namespace

std::vector<long long> Model::build_core_graph(const Value& graph, const ParamCheck& check) {
  const std::string where = "core_graph";
  if (graph.kind != Kind::Object)
    throw ValueError(where + " must be an object, received " + json::describe(graph) + ".");
  const Value& inputs = list_field(graph, "inputs", where, 1, kMaxNodes);
  const Value& nodes = list_field(graph, "nodes", where, 1, kMaxNodes);
  const Value& outputs = list_field(graph, "outputs", where, 1, kMaxNodes);

  for (size_t i = 0; i < inputs.array.size(); ++i) {
    const std::string what = where + ": input " + std::to_string(i);
    const Shape s = graph_input_shape(inputs.array[i], what);
    at_node(what, [&] { return add_input(s); });
  }
  std::vector<long long> weight_of;  // per core layer
  std::set<long long> weights_used;
  for (size_t j = 0; j < nodes.array.size(); ++j) {
    const std::string what = where + ": node " + std::to_string(j);
    const Value& node = nodes.array[j];
    if (node.kind != Kind::Object)
      throw ValueError(what + " must be an object, received " + json::describe(node) + ".");
    const Value* layer = node.find("layer");
    const Value* shared = node.find("shared");
    if (!layer == !shared)
      throw ValueError(what + " must have one of 'layer' (a new layer) and 'shared' (another "
                       "node of an earlier layer).");
    const std::vector<int> in = tensor_ids(list_field(node, "inputs", what, 0, kMaxNodeInputs),
                                           json::member(what, "inputs"), tensors_.size());
    long long w = -1;
    if (const Value* v = node.find("weights"); v && !v->is_null())
      w = json::as_int(*v, json::member(what, "weights"), -1, kMaxWeight);
    if (shared) {
      // Its params are the layer's own, matched at that layer's node.
      if (w != -1)
        throw ValueError(what + ": a 'shared' node uses its layer's weights; 'weights' belongs "
                         "to the node with the 'layer'.");
      const long long s = json::as_int(*shared, json::member(what, "shared"), 0, INT_MAX);
      if (s >= (long long)layers_.size())
        throw ValueError(what + ": 'shared' is " + std::to_string(s) + ", but only " +
                         std::to_string(layers_.size()) + " layers are made before it.");
      at_node(what, [&] { return add_shared_node((size_t)s, in); });
      continue;
    }
    if (w >= 0 && !weights_used.insert(w).second)
      throw ValueError(what + ": weight index " + std::to_string(w) + " is given to two "
                       "layers; each layer's weights are its own.");
    at_node(what, [&] {
      const Shape first = in.empty() ? Shape{} : tensors_[in[0]].shape;
      return append(layer_from_config(*layer, first), in, [&](size_t, const Layer& l) {
        if (w >= 0) return check((size_t)w, l);
        if (!l.params().empty())  // nothing would name them in the file
          throw ValueError("Layer '" + l.name() + "' (" + l.type() + ") has weights ('" +
                           l.params()[0].name + "'), but the node gives no 'weights' index.");
      });
    });
    weight_of.push_back(w);
  }

  const std::vector<int> outs = tensor_ids(outputs, json::member(where, "outputs"),
                                           tensors_.size());
  for (int t : outs)
    if (tensors_[t].producer < 0)
      throw ValueError(where + ": output tensor " + std::to_string(t) + " is a model input; "
                       "outputs must be made by nodes.");
  set_outputs(outs);
  return weight_of;
}

}  // namespace shenjing
