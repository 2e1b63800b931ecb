// manifest_check: the TensorRT-free half of trt_host (builds and is tested without a GPU).
//
// Reads a bundle's manifest.json (docs/bundle.md, schema_version 1) with nlohmann-json,
// picks the engine record for a precision, checks it against the running TensorRT version
// and GPU compute capability, reads the plan only after its size and sha256 match, and
// computes latency percentiles. Errors carry the CLI's exit codes: 2 bad input,
// 3 incompatible environment, 4 integrity refusal.
#pragma once

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace genedge {

struct CheckError : std::runtime_error {
    int code;
    CheckError(int code_, const std::string& what) : std::runtime_error(what), code(code_) {}
};

struct Version {
    int major = 0, minor = 0, patch = 0;
    static Version parse(const std::string& text);  // "10.3.0", "8.6"
    static Version from_lib(int32_t v);              // getInferLibVersion(): 8601, 100300
    std::string str() const;
};

struct EngineRecord {
    std::string file, graph, precision, sha256;
    uint64_t size = 0;
    Version tensorrt;
    std::string device_name;
    std::string compute_capability;                 // normalised "8.7"
    std::vector<std::array<int64_t, 3>> profiles;   // [[min, opt, max] batch sizes]
    bool version_compatible = false;
    int dla_core = -1;                              // -1: GPU
    bool quality_approved = false;                  // the artifact's int8 quality gate
    bool verified = true;                           // export's verification verdict is not "fail"
};

struct Bundle {
    std::string root;
    std::string kind;
    int latent_dim = 0, num_classes = 0, image_size = 0, channels = 0;
    std::string output_format = "uint8";
    std::vector<EngineRecord> engines;
};

// Read and validate ROOT/manifest.json (format, schema_version, engine records).
Bundle read_bundle(const std::string& root);

// The rules the Python runtime applies (runtime/trt_backend.py check_engine_record):
// a plain engine needs exactly its TensorRT major.minor.patch; a version-compatible one runs
// on that version or any newer one, and only when the caller trusts its host code.
bool version_fits(const EngineRecord& e, const Version& trt);

// The engine of PRECISION for the image graph that this TensorRT and GPU ("8.7") can run.
// PRECISION "" picks as Python's runtime does: a quality-approved, verified int8, then a
// verified fp16, then fp32. Exit 3 for a version or GPU mismatch; exit 4 for a
// version-compatible engine (it carries host code) unless allow_version_compatible.
const EngineRecord& pick_engine(const Bundle& b, const std::string& precision, const Version& trt,
                                const std::string& compute_capability,
                                bool allow_version_compatible = false);

// The plan's bytes, read only from inside the bundle and only if size and sha256 match.
std::vector<char> read_verified(const Bundle& b, const EngineRecord& e);

// "8.7" from "8.7", "sm87", "87", 8.7 or 87 (the manifest may hold any of them).
std::string normalise_cc(const std::string& text);

std::string sha256_hex(const void* data, size_t size);
std::string sha256_file(const std::string& path);

// trtexec-style summary: min, max, mean, median and percentiles of a sample of times (ms).
struct Summary {
    double min = 0, max = 0, mean = 0, median = 0, p90 = 0, p95 = 0, p99 = 0;
    size_t n = 0;
};
Summary summarise(std::vector<double> values_ms);
std::string format_summary(const std::string& name, const Summary& s);

}  // namespace genedge
