// classify_idx: classifies the images of an IDX file (the MNIST format) with a model saved from
// Python by `model.save(path)`. It doubles as the example of the shenjing C++ API: load a
// model, predict in batches, read the outputs (see run()).
//
//   classify_idx MODEL IMAGES.idx [--scale S] [--limit N] [--threads N] [--batch B]
//                [--outputs FILE]
//
// Prints "index<TAB>class<TAB>probability" per image (the argmax of the model output) to
// stdout and a summary to stderr. Errors: exit 1; usage errors: exit 2.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "shenjing/shenjing.hpp"

namespace {

const char* const kSynopsis =
    "usage: classify_idx MODEL IMAGES.idx [--scale S] [--limit N] [--threads N] [--batch B]\n"
    "                    [--outputs FILE]\n";
const char* const kOptions =
    "  MODEL          a model saved from Python with model.save(path)\n"
    "  IMAGES.idx     images in IDX format, unsigned bytes (0x08) or float32 (0x0D)\n"
    "  --scale S      the model sees value / S (default 255 for bytes, 1 for float32)\n"
    "  --limit N      classify only the first N images\n"
    "  --threads N    threads for inference (default: OpenMP's)\n"
    "  --batch B      images per predict call (default 256)\n"
    "  --outputs FILE write every model output as little-endian float32 (images x outputs)\n";

// Bad command line: reported with the usage, exit status 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Options {
  std::string model, images, outputs;
  double scale = 0;  // 0: the default for the data type
  long long limit = -1;
  int threads = 0;  // 0: leave OpenMP's default
  int batch = 256;
};

long long parse_int(const std::string& flag, const std::string& text, long long max) {
  std::size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || v < 1 || v > max)
    throw UsageError(flag + " needs an integer from 1 to " + std::to_string(max) + ", got '" +
                     text + "'");
  return v;
}

double parse_scale(const std::string& text) {
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || !std::isfinite(v) || v <= 0)
    throw UsageError("--scale needs a positive number, got '" + text + "'");
  return v;
}

Options parse_args(int argc, char** argv) {
  Options o;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.size() < 2 || arg.compare(0, 2, "--") != 0) {
      positional.push_back(arg);
      continue;
    }
    if (i + 1 >= argc) throw UsageError(arg + " needs a value");
    const std::string value = argv[++i];
    if (arg == "--scale") o.scale = parse_scale(value);
    else if (arg == "--limit") o.limit = parse_int(arg, value, 1LL << 40);
    else if (arg == "--threads") o.threads = (int)parse_int(arg, value, 1024);
    else if (arg == "--batch") o.batch = (int)parse_int(arg, value, 1 << 20);
    else if (arg == "--outputs") o.outputs = value;
    else throw UsageError("unknown option " + arg);
  }
  if (positional.size() != 2)
    throw UsageError("expected 2 arguments (MODEL and IMAGES.idx), got " +
                     std::to_string(positional.size()));
  o.model = positional[0];
  o.images = positional[1];
  return o;
}

// An IDX file: dims[0] items of dims[1..] values each, the data still in file byte order.
struct Idx {
  int type = 0;  // 0x08 unsigned byte or 0x0D big-endian float32
  std::vector<std::uint32_t> dims;
  std::uint64_t count = 0, item_size = 1;  // items read, values per item
  std::vector<unsigned char> data;         // count * item_size values
};

std::uint32_t read_be32(const unsigned char* p) {
  return (std::uint32_t)p[0] << 24 | (std::uint32_t)p[1] << 16 | (std::uint32_t)p[2] << 8 | p[3];
}

// Reads the header and the first `limit` items (all when limit < 0). Everything is checked
// against the file size before anything is allocated.
Idx read_idx(const std::string& path, long long limit) {
  const std::string where = path + ": ";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw std::runtime_error(where + (std::filesystem::exists(path, ec) ? "not a regular file"
                                                                         : "no such file"));
  const std::uint64_t file_size = std::filesystem::file_size(path, ec);
  if (ec) throw std::runtime_error(where + "cannot read the file size (" + ec.message() + ")");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(where + "cannot open the file");

  unsigned char magic[4];
  if (file_size < 4 || !in.read(reinterpret_cast<char*>(magic), 4))
    throw std::runtime_error(where + "not an IDX file (shorter than its 4-byte magic number)");
  if (magic[0] != 0 || magic[1] != 0)
    throw std::runtime_error(where + "not an IDX file (the magic number must start with two "
                                     "zero bytes)");
  Idx idx;
  idx.type = magic[2];
  if (idx.type != 0x08 && idx.type != 0x0D) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02X", idx.type);
    throw std::runtime_error(where + "unsupported IDX data type " + hex +
                             " (supported: 0x08 unsigned byte, 0x0D float32)");
  }
  const int ndim = magic[3];
  if (ndim < 2)  // e.g. a labels file
    throw std::runtime_error(where + "the IDX file has " + std::to_string(ndim) +
                             " dimension(s); images need 2 or more (the count, then the shape)");

  const std::uint64_t header = 4 + 4 * (std::uint64_t)ndim;
  std::vector<unsigned char> raw(4 * ndim);
  if (file_size < header || !in.read(reinterpret_cast<char*>(raw.data()), raw.size()))
    throw std::runtime_error(where + "truncated IDX header (" + std::to_string(ndim) +
                             " dimensions need " + std::to_string(header) +
                             " bytes, the file has " + std::to_string(file_size) + ")");
  for (int i = 0; i < ndim; ++i) idx.dims.push_back(read_be32(&raw[4 * i]));

  std::string dims;  // "10000x28x28"
  for (std::uint32_t d : idx.dims) dims += (dims.empty() ? "" : "x") + std::to_string(d);
  if (std::count(idx.dims.begin(), idx.dims.end(), 0u) > 0)
    throw std::runtime_error(where + "the IDX file holds no images (its dimensions are " + dims +
                             ")");

  // Data size, checked against the file length as it grows so it cannot overflow.
  const std::uint64_t value_bytes = idx.type == 0x08 ? 1 : 4;
  const std::uint64_t data_bytes = file_size - header;
  std::uint64_t total = value_bytes;
  bool too_big = false;
  for (int i = 0; i < ndim; ++i) {
    if (total > data_bytes / idx.dims[i]) {
      too_big = true;
      break;
    }
    total *= idx.dims[i];
    if (i > 0) idx.item_size *= idx.dims[i];  // <= total
  }
  const std::string values = dims + " values of " + std::to_string(value_bytes) + " byte" +
                             (value_bytes > 1 ? "s" : "");
  if (too_big || total > data_bytes)
    throw std::runtime_error(where + "truncated IDX file: the header says " + values +
                             (too_big ? "" : " (" + std::to_string(total) + " bytes)") +
                             ", the file holds " + std::to_string(data_bytes) + " data bytes");
  if (total < data_bytes)
    throw std::runtime_error(where + "not a valid IDX file: the header says " + values + " (" +
                             std::to_string(total) + " bytes), the file holds " +
                             std::to_string(data_bytes) + " data bytes");

  idx.count = idx.dims[0];
  if (limit >= 0) idx.count = std::min<std::uint64_t>(idx.count, (std::uint64_t)limit);
  idx.data.resize(idx.count * idx.item_size * value_bytes);
  if (!in.read(reinterpret_cast<char*>(idx.data.data()), (std::streamsize)idx.data.size()))
    throw std::runtime_error(where + "reading the file failed");
  return idx;
}

// Converts values [first, first + n) to float as value / scale, computed in double like
// numpy's `x / 255.0`, so the model sees the same float32 inputs as in Python.
void to_float(const Idx& idx, std::uint64_t first, std::uint64_t n, double scale, float* out) {
  for (std::uint64_t i = 0; i < n; ++i) {
    double v;
    if (idx.type == 0x08) {
      v = idx.data[first + i];
    } else {  // big-endian float32
      const std::uint32_t bits = read_be32(&idx.data[4 * (first + i)]);
      float f;
      std::memcpy(&f, &bits, 4);
      v = f;
    }
    out[i] = (float)(v / scale);
  }
}

void write_le32(std::ofstream& out, const float* values, std::size_t n) {
  std::vector<unsigned char> bytes(4 * n);
  for (std::size_t i = 0; i < n; ++i) {
    std::uint32_t b;
    std::memcpy(&b, &values[i], 4);
    for (int k = 0; k < 4; ++k) bytes[4 * i + k] = (unsigned char)(b >> (8 * k));
  }
  out.write(reinterpret_cast<const char*>(bytes.data()), (std::streamsize)bytes.size());
}

int run(const Options& opt) {
  if (opt.threads > 0) shenjing::set_num_threads(opt.threads);

  // Throws shenjing::ValueError (a std::invalid_argument) naming the path and the problem.
  shenjing::Model model = shenjing::Model::load(opt.model);
  const shenjing::Shape& in_shape = model.input_shape();  // per sample, no batch axis
  const long long in_size = shenjing::shape_size(in_shape);
  const long long out_size = shenjing::shape_size(model.output_shape());

  const Idx idx = read_idx(opt.images, opt.limit);
  if ((long long)idx.item_size != in_size) {
    std::string dims;  // one image's shape, Python style: "(28, 28)", "(784,)"
    for (std::size_t i = 1; i < idx.dims.size(); ++i)
      dims += (i > 1 ? ", " : "") + std::to_string(idx.dims[i]);
    if (idx.dims.size() == 2) dims += ",";
    throw std::runtime_error(opt.images + ": its images have shape (" + dims + "), " +
                             std::to_string(idx.item_size) +
                             " values, but the model expects input of shape " +
                             shenjing::shape_str(in_shape) + ", " + std::to_string(in_size) +
                             " values per image");
  }
  const double scale = opt.scale > 0 ? opt.scale : idx.type == 0x08 ? 255.0 : 1.0;

  std::ofstream outputs;
  if (!opt.outputs.empty()) {
    outputs.open(opt.outputs, std::ios::binary | std::ios::trunc);
    if (!outputs) throw std::runtime_error(opt.outputs + ": cannot create the file");
  }

  const auto start = std::chrono::steady_clock::now();
  std::vector<float> x;
  for (std::uint64_t first = 0; first < idx.count; first += opt.batch) {
    const int n = (int)std::min<std::uint64_t>(opt.batch, idx.count - first);
    x.resize((std::size_t)n * in_size);
    to_float(idx, first * in_size, (std::uint64_t)n * in_size, scale, x.data());

    // Batch shape (n, *input_shape) in, (n, *output_shape) out, row-major.
    std::vector<int> shape{n};
    shape.insert(shape.end(), in_shape.begin(), in_shape.end());
    const shenjing::Tensor y = model.predict(x.data(), shape);

    for (int i = 0; i < n; ++i) {
      const float* row = y.data.data() + (std::size_t)i * out_size;
      const long long best = std::max_element(row, row + out_size) - row;
      std::printf("%llu\t%lld\t%.6f\n", (unsigned long long)(first + i), best, row[best]);
    }
    if (outputs.is_open()) write_le32(outputs, y.data.data(), y.size());
  }
  if (outputs.is_open()) {
    outputs.close();
    if (!outputs) throw std::runtime_error(opt.outputs + ": writing the file failed");
  }
  if (std::fflush(stdout) != 0) throw std::runtime_error("writing to stdout failed");

  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr,
               "classify_idx: %llu images in %.3f s (%.0f images/s; threads: %d, kernels: %s)\n",
               (unsigned long long)idx.count, seconds,
               seconds > 0 ? (double)idx.count / seconds : 0.0, shenjing::get_num_threads(),
               shenjing::isa());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "-h") == 0 || std::strcmp(argv[i], "--help") == 0) {
      std::printf("%s%s", kSynopsis, kOptions);
      return 0;
    }
  }
  try {
    return run(parse_args(argc, argv));
  } catch (const UsageError& e) {
    std::fprintf(stderr, "classify_idx: %s\n%s", e.what(), kSynopsis);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "classify_idx: %s\n", e.what());
    return 1;
  }
}
