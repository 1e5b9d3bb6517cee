// edge_kd's ExecuTorch runner for emulated benchmarks: runs a .pte under qemu-aarch64 with the
// aarch64 runtime libraries of the executorch wheel (XNNPACK backend, optimized and quantized kernels).
//
// Why C++: ExecuTorch's Python bindings need libtorch, and PyPI has no CPU aarch64 torch; an app runs
// the same C++ runtime through the Module API.
//
//   edge-kd-et-runner MODEL.pte RESULT.json WARMUP BASELINE RUNS [INPUT.bin ...]
//
// Each INPUT.bin holds the raw bytes of one input tensor (the host writes the same arrays as its own
// benchmark). Marked regions (see insn_classes.c): BASELINE empty ones, then RUNS inferences.
#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>
#include <executorch/runtime/platform/runtime.h>

#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

using executorch::aten::ScalarType;
using executorch::extension::Module;
using executorch::extension::TensorPtr;
using executorch::extension::make_tensor_ptr;
using executorch::runtime::Error;
using executorch::runtime::EValue;

static const long kMarkNr = 0x4544;
static const unsigned long kMarkCookie = 0x65646765UL;

static void mark(int open) { syscall(kMarkNr, kMarkCookie, open); }

static std::string escape(const std::string &s) {
    std::string out;
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        if (c == '\n') { out += "\\n"; continue; }
        out += c;
    }
    return out;
}

static int fail(const char *result_path, const std::string &message, bool input_error) {
    FILE *f = fopen(result_path, "w");
    if (f) {
        fprintf(f, "{\"ok\": false, \"input_error\": %s, \"error\": \"%s\"}\n", input_error ? "true" : "false",
                escape(message).c_str());
        fclose(f);
    }
    return 0;
}

static const char *dtype_name(ScalarType t) {
    switch (t) {
        case ScalarType::Float: return "float32";
        case ScalarType::Long: return "int64";
        case ScalarType::Int: return "int32";
        case ScalarType::Char: return "int8";
        case ScalarType::Byte: return "uint8";
        case ScalarType::Bool: return "bool";
        case ScalarType::Half: return "float16";
        default: return "other";
    }
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: %s MODEL.pte RESULT.json WARMUP BASELINE RUNS [INPUT.bin ...]\n", argv[0]);
        return 2;
    }
    const char *model_path = argv[1], *result_path = argv[2];
    int warmup = atoi(argv[3]), baseline = atoi(argv[4]), runs = atoi(argv[5]);
    executorch::runtime::runtime_init();

    Module module(model_path, Module::LoadMode::File);
    if (module.load_method("forward") != Error::Ok) {
        return fail(result_path, std::string(model_path) + ": ExecuTorch cannot load method 'forward' (corrupt .pte, "
                    "or an operator/delegate missing from the aarch64 runtime)", true);
    }
    auto meta = module.method_meta("forward");
    if (!meta.ok()) return fail(result_path, "cannot read the method's metadata", true);
    size_t n_inputs = meta->num_inputs();
    if ((size_t)(argc - 6) != n_inputs) {
        return fail(result_path, "the model takes " + std::to_string(n_inputs) + " inputs, got " +
                    std::to_string(argc - 6), true);
    }
    std::vector<TensorPtr> tensors;
    std::vector<EValue> inputs;
    std::string specs = "[";
    for (size_t i = 0; i < n_inputs; i++) {
        auto info = meta->input_tensor_meta(i);
        if (!info.ok()) return fail(result_path, "input " + std::to_string(i) + " is not a tensor", true);
        std::ifstream in(argv[6 + i], std::ios::binary);
        std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (bytes.size() != info->nbytes()) {
            return fail(result_path, "input " + std::to_string(i) + " has " + std::to_string(bytes.size()) +
                        " bytes, the model expects " + std::to_string(info->nbytes()), true);
        }
        std::vector<executorch::aten::SizesType> sizes(info->sizes().begin(), info->sizes().end());
        std::vector<uint8_t> dim_order(info->dim_order().begin(), info->dim_order().end());
        tensors.push_back(make_tensor_ptr(sizes, std::move(bytes), dim_order, {}, info->scalar_type()));
        inputs.emplace_back(tensors.back());
        specs += std::string(i ? ", " : "") + "{\"name\": \"input_" + std::to_string(i) + "\", \"shape\": [";
        for (size_t d = 0; d < sizes.size(); d++) specs += (d ? ", " : "") + std::to_string(sizes[d]);
        specs += std::string("], \"dtype\": \"") + dtype_name(info->scalar_type()) + "\"}";
    }
    specs += "]";
    for (int i = 0; i < (warmup > 0 ? warmup : 1); i++) {
        auto out = module.execute("forward", inputs);
        if (!out.ok()) {
            return fail(result_path, std::string(model_path) + ": ExecuTorch failed to run it (error " +
                        std::to_string((int)out.error()) + ")", true);
        }
    }
    for (int i = 0; i < baseline; i++) {
        mark(1);
        mark(0);
    }
    for (int i = 0; i < runs; i++) {
        mark(1);
        auto out = module.execute("forward", inputs);
        mark(0);
        if (!out.ok()) return fail(result_path, "a timed run failed", false);
    }
    FILE *f = fopen(result_path, "w");
    if (!f) return 1;
    fprintf(f, "{\"ok\": true, \"runtime\": \"executorch\", \"inputs\": %s}\n", specs.c_str());
    fclose(f);
    return 0;
}
