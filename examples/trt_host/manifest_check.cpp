// manifest_check.cpp: see manifest_check.h. No TensorRT or CUDA here.
#include "manifest_check.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <numeric>
#include <sstream>

#include <nlohmann/json.hpp>

namespace genedge {
namespace {

using json = nlohmann::json;

constexpr int kBadInput = 2, kEnvironment = 3, kIntegrity = 4;
constexpr uint64_t kMaxManifestBytes = 16u << 20;

// ---------------------------------------------------------------- SHA-256 (FIPS 180-4)

constexpr uint32_t kK[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

class Sha256 {
public:
    void update(const unsigned char* p, size_t n) {
        bits_ += static_cast<uint64_t>(n) * 8;
        while (n) {
            size_t take = std::min(n, sizeof buf_ - used_);
            std::memcpy(buf_ + used_, p, take);
            used_ += take, p += take, n -= take;
            if (used_ == sizeof buf_) block(buf_), used_ = 0;
        }
    }
    std::string hex() {
        uint64_t bits = bits_;
        unsigned char pad = 0x80, zero = 0;
        update(&pad, 1);
        while (used_ != 56) update(&zero, 1);
        unsigned char len[8];
        for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(bits >> (56 - 8 * i));
        update(len, 8);
        char out[65];
        for (int i = 0; i < 8; ++i) std::snprintf(out + 8 * i, 9, "%08x", h_[i]);
        return std::string(out, 64);
    }

private:
    void block(const unsigned char* p) {
        uint32_t w[64];
        for (int i = 0; i < 16; ++i)
            w[i] = uint32_t(p[4 * i]) << 24 | uint32_t(p[4 * i + 1]) << 16 | uint32_t(p[4 * i + 2]) << 8 | p[4 * i + 3];
        for (int i = 16; i < 64; ++i) {
            uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
            uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4], f = h_[5], g = h_[6], h = h_[7];
        for (int i = 0; i < 64; ++i) {
            uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + kK[i] + w[i];
            uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            h = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
        }
        h_[0] += a, h_[1] += b, h_[2] += c, h_[3] += d, h_[4] += e, h_[5] += f, h_[6] += g, h_[7] += h;
    }
    uint32_t h_[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                      0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    unsigned char buf_[64];
    size_t used_ = 0;
    uint64_t bits_ = 0;
};

// ---------------------------------------------------------------- bundle files

// ROOT/NAME, refused (exit 4) unless NAME stays inside the bundle as a plain, singly
// linked file: the same rules as genedge/manifest.py's resolve_inside.
std::string inside(const std::string& root, const std::string& name) {
    bool bad = name.empty() || name[0] == '/' || name.find('\\') != std::string::npos ||
               name.find('\0') != std::string::npos;
    std::istringstream parts(name);
    for (std::string part; !bad && std::getline(parts, part, '/');) bad = part.empty() || part == "..";
    if (bad) throw CheckError(kIntegrity, "Bundle entry '" + name + "' leaves the bundle folder; refused.");
    std::string path = root;
    std::istringstream walk(name);
    for (std::string part; std::getline(walk, part, '/');) {
        path += "/" + part;
        struct stat st;
        if (lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode))
            throw CheckError(kIntegrity, "Bundle entry '" + name + "' is or passes through a symlink; refused.");
    }
    struct stat st;
    if (stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink > 1)
        throw CheckError(kIntegrity, "Bundle entry '" + name + "' has several hard links; refused.");
    return path;
}

std::vector<char> read_all(const std::string& path, uint64_t limit) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw CheckError(kBadInput, "Cannot read '" + path + "'.");
    std::vector<char> data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (data.size() > limit) throw CheckError(kBadInput, "'" + path + "' is larger than expected.");
    return data;
}

std::string str_or(const json& j, const char* key, const std::string& dflt = "") {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return dflt;
    if (it->is_string()) return it->get<std::string>();
    return it->dump();
}

int int_or(const json& j, const char* key, int dflt) {
    auto it = j.find(key);
    return it != j.end() && it->is_number_integer() ? it->get<int>() : dflt;
}

EngineRecord engine_from(const json& a, const std::string& where) {
    EngineRecord e;
    e.file = str_or(a, "file");
    e.graph = str_or(a, "graph");
    e.precision = str_or(a, "precision");
    e.sha256 = str_or(a, "sha256");
    if (!a.contains("size") || !a["size"].is_number_unsigned() || e.file.empty() || e.sha256.size() != 64)
        throw CheckError(kBadInput, "Manifest '" + where + "' has a malformed engine record; re-export the bundle.");
    e.size = a["size"].get<uint64_t>();
    const json& eng = a.contains("engine") && a["engine"].is_object() ? a["engine"] : json::object();
    e.tensorrt = Version::parse(str_or(eng, "tensorrt_version"));
    e.device_name = str_or(eng, "device_name");
    e.compute_capability = normalise_cc(str_or(eng, "compute_capability"));
    auto vc = eng.find("version_compatible");
    e.version_compatible = vc != eng.end() && vc->is_boolean() && vc->get<bool>();
    e.dla_core = int_or(eng, "dla_core", -1);
    auto approved = a.find("quality_approved");
    e.quality_approved = approved != a.end() && approved->is_boolean() && approved->get<bool>();
    if (a.contains("verification") && a["verification"].is_object())
        e.verified = str_or(a["verification"], "verdict") != "fail";
    if (eng.contains("profiles") && eng["profiles"].is_array())
        for (const json& p : eng["profiles"])
            if (p.is_array() && p.size() == 3 && p[0].is_number_integer())
                e.profiles.push_back({p[0].get<int64_t>(), p[1].get<int64_t>(), p[2].get<int64_t>()});
    return e;
}

double percentile(const std::vector<double>& sorted, double q) {
    // Nearest rank, as trtexec reports it.
    size_t rank = static_cast<size_t>(std::ceil(q / 100.0 * sorted.size()));
    return sorted[std::min(sorted.size() - 1, rank ? rank - 1 : 0)];
}

}  // namespace

// ---------------------------------------------------------------- public

Version Version::parse(const std::string& text) {
    Version v;
    if (std::sscanf(text.c_str(), "%d.%d.%d", &v.major, &v.minor, &v.patch) < 1) v = Version{};
    return v;
}

Version Version::from_lib(int32_t v) {
    // NV_TENSORRT_VERSION: major*1000 + minor*100 + patch up to TensorRT 8, major*10000 + ... from 10.
    int scale = v >= 100000 ? 10000 : 1000;
    return Version{v / scale, (v % scale) / 100, v % 100};
}

std::string Version::str() const {
    return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

std::string normalise_cc(const std::string& text) {
    std::string digits;
    for (char c : text)
        if (std::isdigit(static_cast<unsigned char>(c)) || c == '.') digits += c;
    if (digits.empty()) return "";
    if (digits.find('.') != std::string::npos) return digits;
    return digits.substr(0, digits.size() - 1) + "." + digits.substr(digits.size() - 1);  // "87" -> "8.7"
}

Bundle read_bundle(const std::string& root) {
    const std::string where = root + "/manifest.json";
    struct stat st;
    if (stat(root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        throw CheckError(kBadInput, "Bundle '" + root + "' is not a folder; pass the folder written by `genedge export`.");
    if (lstat(where.c_str(), &st) != 0)
        throw CheckError(kBadInput, "Bundle '" + root + "' has no manifest.json; re-export it with `genedge export`.");
    if (S_ISLNK(st.st_mode)) throw CheckError(kIntegrity, "'" + where + "' is a symlink; refused.");
    std::vector<char> text = read_all(where, kMaxManifestBytes);
    json m = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
    if (m.is_discarded() || !m.is_object())
        throw CheckError(kBadInput, "Manifest '" + where + "' is not valid JSON; re-export the bundle.");
    if (str_or(m, "format") != "genedge.bundle")
        throw CheckError(kBadInput, "'" + where + "' is not a genedge bundle manifest.");
    if (!m.contains("schema_version") || m["schema_version"] != 1)
        throw CheckError(kIntegrity, "Bundle schema_version " + str_or(m, "schema_version", "?") +
                                         " is not supported; this host reads version 1.");
    Bundle b;
    b.root = root;
    b.kind = str_or(m, "kind");
    const json& model = m.contains("model") && m["model"].is_object() ? m["model"] : json::object();
    b.latent_dim = int_or(model, "latent_dim", 0);
    b.num_classes = int_or(model, "num_classes", 0);
    b.image_size = int_or(model, "image_size", 0);
    b.channels = int_or(model, "channels", 0);
    b.output_format = str_or(model, "output_format", "uint8");
    if (!m.contains("artifacts") || !m["artifacts"].is_array())
        throw CheckError(kBadInput, "Manifest '" + where + "' has no artifact list; re-export the bundle.");
    for (const json& a : m["artifacts"])
        if (a.is_object() && str_or(a, "format") == "engine") b.engines.push_back(engine_from(a, where));
    return b;
}

bool version_fits(const EngineRecord& e, const Version& trt) {
    auto key = [](const Version& v) { return std::array<int, 3>{v.major, v.minor, v.patch}; };
    return e.version_compatible ? key(trt) >= key(e.tensorrt) : key(trt) == key(e.tensorrt);
}

const EngineRecord& pick_engine(const Bundle& b, const std::string& precision, const Version& trt,
                                const std::string& compute_capability, bool allow_version_compatible) {
    const bool chosen = !precision.empty();
    std::vector<std::string> order = chosen ? std::vector<std::string>{precision}
                                            : std::vector<std::string>{"int8", "fp16", "fp32"};
    const std::string cc = normalise_cc(compute_capability);
    const EngineRecord* refused = nullptr;  // the first candidate that did not fit, to explain
    std::string why;
    int code = kEnvironment;
    for (const std::string& p : order) {
        for (const EngineRecord& e : b.engines) {
            if (e.precision != p || (e.graph != "generator" && e.graph != "decoder")) continue;
            if (!chosen && (!e.verified || (p == "int8" && !e.quality_approved))) continue;
            std::string problem;
            int problem_code = kEnvironment;
            if (!version_fits(e, trt)) {
                problem = "Engine '" + e.file + "' was built with TensorRT " + e.tensorrt.str() +
                          "; this process runs TensorRT " + trt.str() + " (needs " +
                          (e.version_compatible ? "that version or newer" : "exactly that version, up to the patch") +
                          "). Rebuild the engine on this device (`genedge export --trt`).";
            } else if (!e.compute_capability.empty() && e.compute_capability != cc) {
                problem = "Engine '" + e.file + "' was built for compute capability " + e.compute_capability +
                          " (" + e.device_name + "); this GPU is " + cc + ". Rebuild the engine on this GPU.";
            } else if (e.version_compatible && !allow_version_compatible) {
                problem = "Engine '" + e.file + "' is version-compatible: it carries host code that TensorRT "
                          "would run. Pass --allow-version-compatible if you trust this bundle, or rebuild it "
                          "without --version-compatible.";
                problem_code = kIntegrity;
            }
            if (problem.empty()) {
                if (chosen && p == "int8" && !e.quality_approved)
                    std::fprintf(stderr, "trt_host: warning: '%s' is not quality-approved; running it because "
                                         "--precision int8 was asked for\n", e.file.c_str());
                return e;
            }
            if (!refused) refused = &e, why = problem, code = problem_code;
        }
    }
    if (refused) throw CheckError(code, why);
    std::string have;
    for (const EngineRecord& e : b.engines) have += (have.empty() ? "" : ", ") + e.file;
    throw CheckError(kBadInput, "Bundle '" + b.root + "' has no " + (chosen ? precision + " " : "usable ") +
                                    "TensorRT engine for its image graph (engines: " + (have.empty() ? "none" : have) +
                                    "). Build one with `genedge export --trt` on this device" +
                                    (chosen ? "." : ", or pass --precision."));
}

std::vector<char> read_verified(const Bundle& b, const EngineRecord& e) {
    std::string path = inside(b.root, e.file);
    struct stat st;
    if (stat(path.c_str(), &st) != 0)
        throw CheckError(kIntegrity, "Bundle file '" + e.file + "' is listed in the manifest but missing.");
    if (static_cast<uint64_t>(st.st_size) != e.size)
        throw CheckError(kIntegrity, "Bundle file '" + e.file + "' has " + std::to_string(st.st_size) +
                                         " bytes; the manifest records " + std::to_string(e.size) + ".");
    std::vector<char> data = read_all(path, e.size);
    std::string actual = sha256_hex(data.data(), data.size());
    if (actual != e.sha256)
        throw CheckError(kIntegrity, "Bundle file '" + e.file + "' fails its hash: sha256 " + actual.substr(0, 16) +
                                         "..., manifest records " + e.sha256.substr(0, 16) +
                                         "...; refusing to deserialize it. Re-export the bundle.");
    return data;
}

std::string sha256_hex(const void* data, size_t size) {
    Sha256 h;
    h.update(static_cast<const unsigned char*>(data), size);
    return h.hex();
}

std::string sha256_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw CheckError(kBadInput, "Cannot read '" + path + "'.");
    Sha256 h;
    std::vector<char> buf(1 << 16);
    while (f) {
        f.read(buf.data(), static_cast<std::streamsize>(buf.size()));
        h.update(reinterpret_cast<const unsigned char*>(buf.data()), static_cast<size_t>(f.gcount()));
    }
    return h.hex();
}

Summary summarise(std::vector<double> v) {
    Summary s;
    s.n = v.size();
    if (v.empty()) return s;
    std::sort(v.begin(), v.end());
    s.min = v.front();
    s.max = v.back();
    s.mean = std::accumulate(v.begin(), v.end(), 0.0) / v.size();
    s.median = v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
    s.p90 = percentile(v, 90);
    s.p95 = percentile(v, 95);
    s.p99 = percentile(v, 99);
    return s;
}

std::string format_summary(const std::string& name, const Summary& s) {
    char line[320];
    std::snprintf(line, sizeof line,
                  "%s: min = %.5f ms, max = %.5f ms, mean = %.5f ms, median = %.5f ms, "
                  "percentile(90%%) = %.5f ms, percentile(95%%) = %.5f ms, percentile(99%%) = %.5f ms",
                  name.c_str(), s.min, s.max, s.mean, s.median, s.p90, s.p95, s.p99);
    return line;
}

}  // namespace genedge
