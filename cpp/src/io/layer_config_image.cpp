// Keras configs of the image preprocessing layers (CenterCrop, Resizing, RandomFlip,
// RandomRotation, RandomZoom, RandomTranslation, RandomContrast) -> core layers
// (layers/image.hpp). Every field is checked here with Keras's own rules, so a config Keras
// would refuse is a ValueError naming the layer and the field.
#include <cmath>
#include <string>

#include "io/layer_config.hpp"
#include "io/config_fields.hpp"
#include "layers/image.hpp"

namespace shenjing {
namespace {

using config::Fields;
using config::kMaxDim;
using json::Value;
using Kind = Value::Kind;

// A factor's (lower, upper), Keras's rules per layer:
//  Base: the base preprocessing layer's _set_factor within [lb, ub]: a number f in [lb, ub] gives
//        (max(-|f|, lb), |f|); a pair (a, b) needs a <= ub and b >= lb, then is sorted.
//  Each: RandomZoom / RandomTranslation: a number f gives (-|f|, |f|), a pair is sorted; every
//        number must lie in (lb, ub] (zoom, open_low) or [lb, ub] (translation).
enum class Rule { Base, Each };
void factor(const Fields& f, const std::string& key, Rule rule, double lb, double ub,
            bool open_low, double* lo, double* hi) {
  const Value* v = f.get(key);
  const std::string want = rule == Rule::Base
      ? "a number in [" + std::to_string(lb) + ", " + std::to_string(ub) + "] or a pair of numbers"
      : std::string("a number or a pair of numbers in ") + (open_low ? "(" : "[") +
            std::to_string(lb) + ", " + std::to_string(ub) + "]";
  auto num = [&](const Value& x) {
    // Finite and within 1e6 whatever Keras allows (a rotation factor pair is unbounded there).
    if (x.kind != Kind::Number || !(std::fabs(x.number) <= 1e6)) f.fail(key, want, v);
    const double d = x.number;
    if (rule == Rule::Each && (d > ub || d < lb || (open_low && d == lb))) f.fail(key, want, v);
    return d;
  };
  if (v && v->kind == Kind::Number) {
    const double d = num(*v);
    if (rule == Rule::Base && (d < lb || d > ub)) f.fail(key, want, v);
    *hi = std::fabs(d);
    *lo = rule == Rule::Base ? std::max(-*hi, lb) : -*hi;
    return;
  }
  if (!v || v->kind != Kind::Array || v->array.size() != 2) f.fail(key, want, v);
  const double a = num(v->array[0]), b = num(v->array[1]);
  if (rule == Rule::Base && (a > ub || b < lb)) f.fail(key, want, v);
  *lo = std::min(a, b);
  *hi = std::max(a, b);
}

uint64_t seed(const Fields& f) {
  const Value* s = f.get("seed");
  if (!s) return 0;
  if (s->kind != Kind::Number || s->number < 0 || s->number > 9007199254740992.0 ||
      s->number != std::floor(s->number))
    f.fail("seed", "null or a non-negative integer below 2^53", s);
  return (uint64_t)s->number;
}

Interp interpolation(const Fields& f, bool resize) {
  const std::string s = f.string("interpolation", "bilinear");
  if (s == "bilinear") return Interp::Bilinear;
  if (s == "nearest") return Interp::Nearest;
  if (resize && (s == "bicubic" || s == "lanczos3" || s == "lanczos5" || s == "area"))
    throw ValueError("Layer '" + f.name() + "' (Resizing): interpolation='" + s +
                     "' is not supported; use 'bilinear' or 'nearest'.");
  f.fail("interpolation", "'bilinear' or 'nearest'", f.get("interpolation"));
}

FillMode fill_mode(const Fields& f) {
  const std::string s = f.string("fill_mode", "reflect");
  if (s == "reflect") return FillMode::Reflect;
  if (s == "wrap") return FillMode::Wrap;
  if (s == "constant") return FillMode::Constant;
  if (s == "nearest") return FillMode::Nearest;
  f.fail("fill_mode", "one of 'reflect', 'wrap', 'constant', 'nearest'", f.get("fill_mode"));
}

float fill_value(const Fields& f) {
  return (float)f.number("fill_value", 0.0, -3.4e38, 3.4e38);
}

std::unique_ptr<Layer> resizing(const Fields& f, bool center_crop) {
  f.channels_last();
  ResizeOptions o;
  o.center_crop = center_crop;
  o.height = f.integer("height", 1, kMaxDim);
  o.width = f.integer("width", 1, kMaxDim);
  if (!center_crop) {
    o.interp = interpolation(f, true);
    o.crop_to_aspect = f.boolean("crop_to_aspect_ratio", false);
    o.pad_to_aspect = f.boolean("pad_to_aspect_ratio", false);
    if (o.crop_to_aspect && o.pad_to_aspect)
      throw ValueError("Layer '" + f.name() + "' (Resizing): only one of pad_to_aspect_ratio "
                       "and crop_to_aspect_ratio can be True.");
    if (f.string("fill_mode", "constant") != "constant")
      f.fail("fill_mode", "'constant' (the only mode of Resizing)", f.get("fill_mode"));
    o.fill_value = fill_value(f);
    if (f.boolean("antialias", false))
      throw ValueError("Layer '" + f.name() + "' (Resizing): antialias=True is not supported.");
  }
  return make_resizing(o);
}

std::unique_ptr<Layer> random_affine(const Fields& f, AffineKind kind) {
  f.channels_last();
  AffineOptions o;
  o.kind = kind;
  if (kind == AffineKind::Rotation) {
    factor(f, "factor", Rule::Base, -1.0, 1.0, false, &o.lo[0], &o.hi[0]);
  } else {
    const bool zoom = kind == AffineKind::Zoom;
    factor(f, "height_factor", Rule::Each, -1.0, 1.0, zoom, &o.lo[0], &o.hi[0]);
    o.width_follows = zoom && !f.get("width_factor");
    if (!o.width_follows) factor(f, "width_factor", Rule::Each, -1.0, 1.0, zoom, &o.lo[1], &o.hi[1]);
  }
  o.fill = fill_mode(f);
  o.interp = interpolation(f, false);
  o.fill_value = fill_value(f);
  o.seed = seed(f);
  return make_random_affine(o);
}

std::unique_ptr<Layer> random_flip(const Fields& f) {
  f.channels_last();
  const std::string m = f.string("mode", "horizontal_and_vertical");
  const int mode = m == "horizontal" ? 1 : m == "vertical" ? 2
                   : m == "horizontal_and_vertical" ? 3 : 0;
  if (!mode)
    f.fail("mode", "'horizontal', 'vertical' or 'horizontal_and_vertical'", f.get("mode"));
  return make_random_flip(mode, seed(f));
}

std::unique_ptr<Layer> random_contrast(const Fields& f) {
  f.channels_last();
  double lo = 0, hi = 0;
  factor(f, "factor", Rule::Base, 0.0, 1.0, false, &lo, &hi);
  float range[2] = {0.0f, 255.0f};
  if (const Value* r = f.get("value_range")) {
    const char* want = "a pair of finite numbers (min, max) with min <= max";
    if (r->kind != Kind::Array || r->array.size() != 2) f.fail("value_range", want, r);
    for (int k = 0; k < 2; ++k) {
      const Value& e = r->array[k];
      if (e.kind != Kind::Number || !(std::fabs(e.number) <= 3.4e38)) f.fail("value_range", want, r);
      range[k] = (float)e.number;
    }
    if (!(range[0] <= range[1])) f.fail("value_range", want, r);
  }
  return make_random_contrast(lo, hi, range[0], range[1], seed(f));
}

}  // namespace

std::unique_ptr<Layer> image_layer_from_config(const std::string& cls, const Fields& f) {
  if (cls == "CenterCrop") return resizing(f, true);
  if (cls == "Resizing") return resizing(f, false);
  if (cls == "RandomFlip") return random_flip(f);
  if (cls == "RandomRotation") return random_affine(f, AffineKind::Rotation);
  if (cls == "RandomZoom") return random_affine(f, AffineKind::Zoom);
  if (cls == "RandomTranslation") return random_affine(f, AffineKind::Translation);
  if (cls == "RandomContrast") return random_contrast(f);
  return nullptr;
}

}  // namespace shenjing
