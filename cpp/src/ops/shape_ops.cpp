// Placeholder decoder until this family's ops land: no op of this family is known yet.
#include "ops/op.hpp"

namespace shenjing {

std::unique_ptr<Layer> shape_op_from_config(const std::string&, const config::Fields&) {
  return nullptr;
}

}  // namespace shenjing
