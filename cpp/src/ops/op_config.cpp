// {"class_name": "Op", "config": {"name": ..., "op": "<name>", ...}} -> a primitive op node.
#include "ops/op.hpp"

namespace shenjing {

std::unique_ptr<Layer> op_from_config(const config::Fields& f) {
  const std::string op = f.string("op", "");
  if (op.empty() || op.size() > 64) f.fail("op", "the name of an op", f.get("op"));
  std::unique_ptr<Layer> layer;
  if ((layer = source_op_from_config(op, f))) return layer;
  if ((layer = elementwise_op_from_config(op, f))) return layer;
  if ((layer = reduce_op_from_config(op, f))) return layer;
  if ((layer = shape_op_from_config(op, f))) return layer;
  if ((layer = axis_op_from_config(op, f))) return layer;
  if ((layer = matmul_op_from_config(op, f))) return layer;
  if ((layer = index_op_from_config(op, f))) return layer;
  if ((layer = conv_op_from_config(op, f))) return layer;
  throw ValueError("Op '" + f.name() + "': unknown op '" + op + "'.");
}

}  // namespace shenjing
