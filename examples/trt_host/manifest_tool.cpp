// manifest_tool: trt_host's bundle checks without TensorRT, for CPU machines and tests.
//
//   manifest_tool BUNDLE [--precision P] --trt 10.3.0 --cc 8.7 [--allow-version-compatible]
//                                                                pick + verify the engine
//   manifest_tool --sha256 FILE                                  print a file's sha256
//   manifest_tool --summary 1.5 2 0.5 ...                        trtexec-style percentiles
//
// Exit codes: 0 ok, 2 bad input, 3 incompatible TensorRT/GPU, 4 integrity refusal.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "manifest_check.h"

int main(int argc, char** argv) {
    using namespace genedge;
    try {
        if (argc == 3 && std::string(argv[1]) == "--sha256") {
            std::printf("%s\n", sha256_file(argv[2]).c_str());
            return 0;
        }
        if (argc >= 2 && std::string(argv[1]) == "--summary") {
            std::vector<double> v;
            for (int i = 2; i < argc; ++i) v.push_back(std::atof(argv[i]));
            std::printf("%s\n", format_summary("Latency", summarise(v)).c_str());
            return 0;
        }
        if (argc < 2)
            throw CheckError(2, "usage: manifest_tool BUNDLE [--precision P] --trt X.Y.Z --cc M.m "
                                "[--allow-version-compatible]");
        std::string precision, trt, cc;
        bool allow_vc = false;
        for (int i = 2; i < argc; ++i) {
            std::string k = argv[i];
            if (k == "--allow-version-compatible") { allow_vc = true; continue; }
            if (i + 1 >= argc) throw CheckError(2, "option " + k + " needs a value");
            if (k == "--precision") precision = argv[++i];
            else if (k == "--trt") trt = argv[++i];
            else if (k == "--cc") cc = argv[++i];
            else throw CheckError(2, "unknown option " + k);
        }
        Bundle b = read_bundle(argv[1]);
        const EngineRecord& e = pick_engine(b, precision, Version::parse(trt), cc, allow_vc);
        std::vector<char> plan = read_verified(b, e);
        std::printf("file=%s precision=%s trt=%s cc=%s bytes=%zu sha256=%s host_code=%s\n", e.file.c_str(),
                    e.precision.c_str(), e.tensorrt.str().c_str(), e.compute_capability.c_str(),
                    plan.size(), e.sha256.c_str(), e.version_compatible ? "allowed" : "none");
        for (const auto& p : e.profiles)
            std::printf("profile=%lld,%lld,%lld\n", static_cast<long long>(p[0]),
                        static_cast<long long>(p[1]), static_cast<long long>(p[2]));
        std::printf("latent_dim=%d num_classes=%d image_size=%d channels=%d output_format=%s\n", b.latent_dim,
                    b.num_classes, b.image_size, b.channels, b.output_format.c_str());
        return 0;
    } catch (const CheckError& e) {
        std::fprintf(stderr, "manifest_tool: %s\n", e.what());
        return e.code;
    }
}
