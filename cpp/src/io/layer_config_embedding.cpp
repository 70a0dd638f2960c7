// Keras's Embedding config -> the core layer. The initializer is Python's business (weights
// are drawn there or read from the file); the options Keras 3.15 writes that shenjing does not
// implement must hold the value that changes nothing (null), so a file never loads into a
// model that computes something else.
#include "io/layer_config_embedding.hpp"

namespace shenjing {

std::unique_ptr<Layer> embedding_from_config(const config::Fields& f) {
  EmbeddingOptions o;
  o.input_dim = f.integer("input_dim", 1, config::kMaxDim);  // 2^24: ids are exact float32
  o.output_dim = f.integer("output_dim", 1, config::kMaxDim);
  o.mask_zero = f.boolean("mask_zero", false);
  f.regularizer("embeddings_regularizer", &o.l1, &o.l2);
  for (const char* key : {"embeddings_constraint", "activity_regularizer", "lora_rank",
                          "quantization_config"})
    if (f.get(key)) f.fail(key, "null (not supported)", f.get(key));
  return make_embedding(o);
}

}  // namespace shenjing
