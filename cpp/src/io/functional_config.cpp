// Model::build_functional: the graph of a Keras 3 functional config (what Python's
// model.save writes for Model(inputs, outputs), in Keras's layout; see
// python/shenjing/_functional_config.py).
//
// The config lists layers, each with its `inbound_nodes` (one per call; the inputs of a call
// are `__keras_tensor__` entries naming [layer, node index, tensor index]), then
// `input_layers` and `output_layers`. Inputs are made from the InputLayer entries in the order
// input_layers gives; a layer's calls run once the tensors they read exist (a shared layer's
// second call can read a layer listed after it), as Keras's queue does. A model used as a
// layer (a nested Sequential or Functional config) is expanded in place: its layers become
// core layers of this model, shared at its every call. An "Operation" entry is a primitive op
// (shenjing.ops called on the model's tensors), built by the op decoder; a `constant` op is
// called on no tensors ("args": [[]]), the only kind of entry that may be.
//
// Weight index: a file names layer weights `layers.<i>.<param>`, i counting the config's
// layers that are core layers in config order (Operations included, though they hold no
// weights: Python's saving.weight_layers counts them too), InputLayers skipped and a nested
// model's layers counted inline where the model stands. On return, core layer i is weight
// index i.
//
// The config is untrusted: unknown tensors, cycles, calls that never resolve, absurd counts
// and deep nesting are ValueErrors.
#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "io/json.hpp"
#include "io/layer_config.hpp"
#include "shenjing/model.hpp"

namespace shenjing {
namespace {

using json::Value;
using Kind = Value::Kind;

constexpr int kMaxNesting = 16;                    // models inside models (Python: the same)
constexpr size_t kMaxCalls = size_t(1) << 16;      // layer calls, nested ones included
constexpr long long kMaxNodeIndex = 1 << 16;

enum class EntryKind { Input, Layer, Sequential, Functional };

struct Ref {
  size_t entry;
  size_t node;
};

struct Scope;

struct Entry {
  const Value* spec = nullptr;
  std::string name;
  EntryKind kind = EntryKind::Layer;
  bool op = false;                      // Layer: an Operation entry, built from op_spec
  Value op_spec;                        // {"class_name": "Op", "config": ...}
  size_t weight = 0;                    // Layer: its weight index
  long core = -1;                       // Layer: its core layer, once built
  std::vector<std::vector<Ref>> calls;  // Functional scope: each call's inputs, flattened
  std::unique_ptr<Scope> inner;         // Sequential / Functional
};

struct Scope {
  std::string where;  // "model 'name'"
  bool sequential = false;
  Shape seq_input;  // Sequential: its input shape
  std::vector<Entry> entries;
  std::vector<size_t> inputs;  // input_layers, flattened
  std::vector<Ref> outputs;    // output_layers, flattened
};

const std::string& str_field(const Value& obj, const std::string& key, const std::string& what) {
  return json::as_string(json::require(obj, key, what), json::member(what, key));
}

class Parser {
 public:
  size_t next_weight = 0, calls = 0;

  std::unique_ptr<Scope> parse(const Value& config, const std::string& where, bool sequential,
                               int depth) {
    if (depth > kMaxNesting)
      throw ValueError(where + " is nested more than " + std::to_string(kMaxNesting) +
                       " models deep.");
    if (config.kind != Kind::Object) throw ValueError(where + ": 'config' must be an object.");
    auto s = std::make_unique<Scope>();
    s->where = where;
    s->sequential = sequential;
    const Value& layers = json::require(config, "layers", where);
    if (layers.kind != Kind::Array) throw ValueError(where + ": 'layers' must be a list.");
    std::map<std::string, size_t> by_name;
    for (size_t k = 0; k < layers.array.size(); ++k) {
      const Value& spec = layers.array[k];
      const std::string label = where + ": layer " + std::to_string(k);
      if (spec.kind != Kind::Object) throw ValueError(label + " must be an object.");
      Entry e;
      e.spec = &spec;
      const Value* cfg = spec.find("config");
      const Value* name = spec.find("name");
      if (!name && cfg) name = cfg->find("name");
      if (!name || name->kind != Kind::String) throw ValueError(label + " has no 'name'.");
      e.name = name->string;
      const std::string& cls = str_field(spec, "class_name", label);
      if (cls == "InputLayer") {
        e.kind = EntryKind::Input;
      } else if (cls == "Sequential" || cls == "Functional" || cls == "Model") {
        if (sequential)
          throw ValueError(where + ": a model inside a Sequential model is not supported.");
        e.kind = cls == "Sequential" ? EntryKind::Sequential : EntryKind::Functional;
        if (!cfg) throw ValueError(label + " has no 'config'.");
        e.inner = parse(*cfg, "model " + json::quote(e.name), cls == "Sequential", depth + 1);
      } else if (cls == "Operation") {
        if (sequential)  // its inputs are named by inbound_nodes, which a Sequential lacks
          throw ValueError(label + ": an Operation in a Sequential model is not supported.");
        e.op = true;
        e.op_spec = operation_spec(spec, label);
        e.weight = next_weight++;
      } else {
        e.kind = EntryKind::Layer;
        e.weight = next_weight++;
      }
      if (sequential) {
        if (e.kind == EntryKind::Input) {
          if (k != 0) throw ValueError(where + ": an InputLayer must come first.");
          s->seq_input = input_shape_from_config(spec);
          continue;
        }
      } else if (!by_name.emplace(e.name, s->entries.size()).second) {
        throw ValueError(where + ": the name " + json::quote(e.name) + " is used by two "
                         "layers; layer names in a model must be unique.");
      }
      s->entries.push_back(std::move(e));
    }
    if (sequential) {
      if (layers.array.empty() || layers.array[0].kind != Kind::Object ||
          !layers.array[0].find("class_name") ||
          layers.array[0].find("class_name")->kind != Kind::String ||
          layers.array[0].find("class_name")->string != "InputLayer")
        throw ValueError(where + ": a nested Sequential model needs its InputLayer first.");
      return s;
    }
    for (Entry& e : s->entries) read_calls(*s, e, by_name);
    read_io(*s, json::require(config, "input_layers", where), by_name, true);
    read_io(*s, json::require(config, "output_layers", where), by_name, false);
    for (size_t k = 0; k < s->entries.size(); ++k)
      if (s->entries[k].kind == EntryKind::Input &&
          std::find(s->inputs.begin(), s->inputs.end(), k) == s->inputs.end())
        throw ValueError(where + ": InputLayer " + json::quote(s->entries[k].name) +
                         " is not one of input_layers.");
    return s;
  }

 private:
  Ref ref(const Value& history, const std::map<std::string, size_t>& by_name,
          const std::string& what) {
    if (history.kind != Kind::Array || history.array.size() != 3 ||
        history.array[0].kind != Kind::String)
      throw ValueError(what + ": a tensor reference must be [layer name, node index, tensor "
                       "index], received " + json::describe(history) + ".");
    auto it = by_name.find(history.array[0].string);
    if (it == by_name.end())
      throw ValueError(what + " reads a tensor of unknown layer " +
                       json::quote(history.array[0].string) + ".");
    const long long node = json::as_int(history.array[1], what + ": node index", 0,
                                        kMaxNodeIndex);
    json::as_int(history.array[2], what + ": tensor index (layers here have one output)", 0, 0);
    return Ref{it->second, (size_t)node};
  }

  void flatten(const Value& v, const std::map<std::string, size_t>& by_name,
               const std::string& what, std::vector<Ref>& out) {
    const Value* cls = v.find("class_name");
    if (v.kind == Kind::Object && cls && cls->kind == Kind::String &&
        cls->string == "__keras_tensor__") {
      const Value& cfg = json::require(v, "config", what);
      out.push_back(ref(json::require(cfg, "keras_history", what), by_name, what));
    } else if (v.kind == Kind::Object && !cls && !v.object.empty()) {
      for (const auto& kv : v.object) flatten(kv.second, by_name, what, out);
    } else if (v.kind == Kind::Array && !v.array.empty()) {
      for (const Value& x : v.array) flatten(x, by_name, what, out);
    } else {
      throw ValueError(what + ": layer inputs must be tensors (or lists or dicts of them), "
                       "received " + json::describe(v) + ".");
    }
  }

  void read_calls(Scope& s, Entry& e, const std::map<std::string, size_t>& by_name) {
    const std::string what = s.where + ": layer " + json::quote(e.name);
    const Value* nodes = e.spec->find("inbound_nodes");
    if (nodes && nodes->kind != Kind::Array)
      throw ValueError(what + ": 'inbound_nodes' must be a list.");
    const size_t n = nodes ? nodes->array.size() : 0;
    if (e.kind == EntryKind::Input) {
      if (n) throw ValueError(what + ": an InputLayer has no inbound nodes.");
      return;
    }
    if (!n) throw ValueError(what + " is never called (it has no inbound nodes).");
    if ((calls += n) > kMaxCalls)
      throw ValueError(s.where + ": more than " + std::to_string(kMaxCalls) + " layer calls.");
    for (const Value& node : nodes->array) {
      std::vector<Ref> in;
      if (node.kind == Kind::Array) {  // Keras 2's form: [[name, node, tensor, kwargs], ...]
        for (const Value& item : node.array) {
          if (item.kind != Kind::Array || item.array.size() < 3 || item.array.size() > 4)
            throw ValueError(what + ": a legacy inbound node entry must be [layer name, node "
                             "index, tensor index(, kwargs)].");
          Value history = item;
          history.array.resize(3);
          in.push_back(ref(history, by_name, what));
        }
      } else {
        const Value& args = json::require(node, "args", what + ": inbound node");
        if (args.kind != Kind::Array || args.array.size() != 1)
          throw ValueError(what + ": a call takes one argument (its inputs), the config "
                           "gives " + json::describe(args) + ".");
        if (const Value* kw = node.find("kwargs")) {
          bool ok = kw->kind == Kind::Object || kw->kind == Kind::Null;
          for (const auto& kv : kw->object) ok = ok && kv.second.kind == Kind::Null;
          if (!ok)
            throw ValueError(what + ": call arguments besides the inputs are not supported.");
        }
        const Value& a = args.array[0];
        if (!(e.op && a.kind == Kind::Array && a.array.empty()))  // [] : a constant op
          flatten(a, by_name, what, in);
      }
      if (in.empty() && !e.op) throw ValueError(what + ": a call with no inputs.");
      e.calls.push_back(std::move(in));
    }
  }

  void read_io(Scope& s, const Value& v, const std::map<std::string, size_t>& by_name,
               bool inputs) {
    const std::string what = s.where + (inputs ? ": input_layers" : ": output_layers");
    if (v.kind == Kind::Array && v.array.size() == 3 && v.array[0].kind == Kind::String) {
      Ref r = ref(v, by_name, what);
      const Entry& e = s.entries[r.entry];
      if (e.kind == EntryKind::Functional) {  // Keras numbers a Functional's calls from 1 here
        if (r.node == 0) throw ValueError(what + ": " + json::quote(e.name) + " has no call 0.");
        --r.node;
      }
      if (inputs) {
        if (e.kind != EntryKind::Input || r.node != 0)
          throw ValueError(what + ": " + json::quote(e.name) + " is not an InputLayer.");
        for (size_t i : s.inputs)
          if (i == r.entry) throw ValueError(what + ": " + json::quote(e.name) + " twice.");
        s.inputs.push_back(r.entry);
      } else {
        s.outputs.push_back(r);
      }
    } else if ((v.kind == Kind::Array && !v.array.empty()) ||
               (v.kind == Kind::Object && !v.object.empty())) {
      for (const Value& x : v.array) read_io(s, x, by_name, inputs);
      for (const auto& kv : v.object) read_io(s, kv.second, by_name, inputs);
    } else {
      throw ValueError(what + ": expected [layer name, node index, tensor index] or a list or "
                       "dict of them, received " + json::describe(v) + ".");
    }
  }
};

// Runs the scopes' calls into the model through `add` (a new core layer; returns its output
// tensor) and `shared` (another call of a core layer).
struct FunctionalBuilder {
  std::function<int(Entry&, const std::vector<int>&)> add;
  std::function<int(size_t, const std::vector<int>&)> shared;
  std::function<const Shape&(int)> shape;
  size_t calls = 0;

  int call(Entry& e, const std::vector<int>& ids, const std::string& where) {
    if (++calls > kMaxCalls)
      throw ValueError(where + ": more than " + std::to_string(kMaxCalls) + " layer calls, "
                       "counting those inside nested models.");
    if (e.kind == EntryKind::Layer) return e.core < 0 ? add(e, ids) : shared(e.core, ids);
    const std::vector<int> outs = run(*e.inner, ids);
    if (outs.size() != 1)
      throw ValueError(e.inner->where + " has " + std::to_string(outs.size()) + " outputs; a "
                       "model used as a layer must have one.");
    return outs[0];
  }

  void expect_shape(int t, const Shape& want, const std::string& what) {
    if (shape(t) != want)
      throw ValueError(what + " expects inputs of shape " + shape_str(want) + ", received " +
                       shape_str(shape(t)) + ".");
  }

  std::vector<int> run(Scope& s, const std::vector<int>& inputs) {
    if (s.sequential) {
      if (inputs.size() != 1) throw ValueError(s.where + " takes one input.");
      expect_shape(inputs[0], s.seq_input, s.where);
      int t = inputs[0];
      for (Entry& e : s.entries) t = call(e, {t}, s.where);
      return {t};
    }
    if (inputs.size() != s.inputs.size())
      throw ValueError(s.where + " takes " + std::to_string(s.inputs.size()) + " inputs, "
                       "received " + std::to_string(inputs.size()) + ".");
    std::vector<std::vector<int>> made(s.entries.size());
    std::vector<size_t> next(s.entries.size(), 0);
    for (size_t i = 0; i < inputs.size(); ++i) {
      expect_shape(inputs[i], input_shape_from_config(*s.entries[s.inputs[i]].spec),
                   s.where + ": input " + json::quote(s.entries[s.inputs[i]].name));
      made[s.inputs[i]] = {inputs[i]};
    }
    // Each layer runs its calls in order; one that waits for a tensor not made yet waits
    // until that call of the producing layer has run.
    std::map<std::pair<size_t, size_t>, std::vector<size_t>> waiting;
    std::deque<size_t> queue;
    for (size_t k = 0; k < s.entries.size(); ++k)
      if (s.entries[k].kind != EntryKind::Input) queue.push_back(k);
    while (!queue.empty()) {
      const size_t k = queue.front();
      queue.pop_front();
      Entry& e = s.entries[k];
      while (next[k] < e.calls.size()) {
        const std::vector<Ref>& in = e.calls[next[k]];
        const Ref* missing = nullptr;
        for (const Ref& r : in)
          if (r.node >= made[r.entry].size()) {
            missing = &r;
            break;
          }
        if (missing) {
          waiting[{missing->entry, missing->node}].push_back(k);
          break;
        }
        std::vector<int> ids;
        for (const Ref& r : in) ids.push_back(made[r.entry][r.node]);
        made[k].push_back(call(e, ids, s.where));
        ++next[k];
        auto woken = waiting.find({k, made[k].size() - 1});
        if (woken != waiting.end()) {
          for (size_t w : woken->second) queue.push_back(w);
          waiting.erase(woken);
        }
      }
    }
    std::string stuck;
    for (size_t k = 0; k < s.entries.size(); ++k)
      if (next[k] < s.entries[k].calls.size() && stuck.size() < 300)
        stuck += (stuck.empty() ? "" : ", ") + json::quote(s.entries[k].name);
    if (!stuck.empty())
      throw ValueError(s.where + ": invalid Functional model configuration: the graph has "
                       "loops or reads tensors no layer call makes. The calls of these layers "
                       "cannot be resolved: " + stuck + ".");
    std::vector<int> outs;
    for (const Ref& r : s.outputs) {
      if (r.node >= made[r.entry].size())
        throw ValueError(s.where + ": output_layers: layer " +
                         json::quote(s.entries[r.entry].name) + " has no call " +
                         std::to_string(r.node) + ".");
      outs.push_back(made[r.entry][r.node]);
    }
    return outs;
  }
};

}  // namespace

void Model::build_functional(const json::Value& config, const ParamCheck& check) {
  Parser parser;
  std::unique_ptr<Scope> top = parser.parse(config, "the model", false, 0);
  std::vector<size_t> weight_of_core;
  FunctionalBuilder b;
  b.add = [&](Entry& e, const std::vector<int>& ids) {
    if (ids.empty() && !e.op) throw ValueError("a call with no inputs.");
    const Shape first = ids.empty() ? Shape{} : tensors_[ids[0]].shape;
    const int out = append(layer_from_config(e.op ? e.op_spec : *e.spec, first), ids,
                           [&](size_t, const Layer& l) { check(e.weight, l); });
    e.core = (long)layers_.size() - 1;
    weight_of_core.push_back(e.weight);
    return out;
  };
  b.shared = [&](size_t layer, const std::vector<int>& ids) {
    return add_shared_node(layer, ids);
  };
  b.shape = [&](int t) -> const Shape& { return tensors_[t].shape; };
  std::vector<int> inputs;
  for (size_t k : top->inputs) inputs.push_back(add_input(input_shape_from_config(
                                                    *top->entries[k].spec)));
  set_outputs(b.run(*top, inputs));
  if (weight_of_core.size() != parser.next_weight)
    throw ValueError("the config has " + std::to_string(parser.next_weight) + " layers, but " +
                     std::to_string(weight_of_core.size()) + " of them are called.");
  // Renumber the core layers by weight index (weight_of_core is a permutation: each layer is
  // built once, at its first call).
  std::vector<std::unique_ptr<Layer>> sorted(layers_.size());
  for (size_t i = 0; i < layers_.size(); ++i) sorted[weight_of_core[i]] = std::move(layers_[i]);
  layers_ = std::move(sorted);
  for (Node& n : nodes_) n.layer = weight_of_core[n.layer];
}

}  // namespace shenjing
