// trt_host: sample a genedge bundle's TensorRT engine from C++, with no Python.
//
//   trt_host BUNDLE [--precision fp16] [--batch 1] [--iterations 200] [--warmup 20]
//                   [--cuda-graph] [--seed 0] [--z latents.f32] [--out trt_samples.pgm]
//                   [--allow-version-compatible]
//
// 1. reads manifest.json (manifest_check.cpp) and picks the engine record of the precision
//    (default: as Python's runtime picks: quality-approved int8, then fp16, then fp32);
// 2. checks the record against getInferLibVersion() and this GPU's compute capability, as
//    Python does: a plain engine needs its exact major.minor.patch; a version-compatible one
//    (it embeds a lean runtime: host code) needs that version or newer AND
//    --allow-version-compatible, the trust opt-in that lets the runtime run its host code;
// 3. checks the plan's size and sha256 before deserializing the raw plan;
// 4. runs the sample loop with the named-tensor API (setInputShape, setTensorAddress,
//    enqueueV3) on one stream, pinned host buffers, optionally replaying a CUDA graph;
// 5. prints latency percentiles in trtexec's vocabulary and writes the last batch.
//
// Latents: by default std::normal_distribution (NOT numpy's generator, so images differ
// from Python's for the same seed); pass --z with n*Z raw float32 values (e.g. written by
// numpy's tofile) to reproduce Python's samples exactly.
//
// Needs TensorRT >= 8.5 and CUDA. Written against the documented C++ API; see
// docs/embedding.md for what has and has not been run.
#include <NvInfer.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "manifest_check.h"

using genedge::CheckError;
using namespace nvinfer1;

#define CUDA_CHECK(call)                                                                          \
    do {                                                                                          \
        cudaError_t err_ = (call);                                                                \
        if (err_ != cudaSuccess)                                                                  \
            throw CheckError(3, std::string(#call) + " failed: " + cudaGetErrorString(err_));     \
    } while (0)

namespace {

class Logger : public ILogger {
    void log(Severity severity, const char* msg) noexcept override {
        if (severity <= Severity::kWARNING) std::fprintf(stderr, "[TensorRT] %s\n", msg);
    }
};

struct Args {
    std::string bundle, precision, z_file, out = "trt_samples.pgm";
    int batch = 1, iterations = 200, warmup = 20;
    bool cuda_graph = false;
    bool allow_version_compatible = false;  // trust the host code of version-compatible engines
    uint64_t seed = 0;
};

Args parse(int argc, char** argv) {
    if (argc < 2) throw CheckError(2, "usage: trt_host BUNDLE [--precision P] [--batch N] [--iterations N] "
                                      "[--warmup N] [--cuda-graph] [--seed S] [--z FILE] [--out FILE] "
                                      "[--allow-version-compatible]");
    Args a;
    a.bundle = argv[1];
    for (int i = 2; i < argc; ++i) {
        std::string k = argv[i];
        if (k == "--cuda-graph") { a.cuda_graph = true; continue; }
        if (k == "--allow-version-compatible") { a.allow_version_compatible = true; continue; }
        if (i + 1 >= argc) throw CheckError(2, "option " + k + " needs a value");
        std::string v = argv[++i];
        if (k == "--precision") a.precision = v;
        else if (k == "--batch") a.batch = std::atoi(v.c_str());
        else if (k == "--iterations") a.iterations = std::atoi(v.c_str());
        else if (k == "--warmup") a.warmup = std::atoi(v.c_str());
        else if (k == "--seed") a.seed = std::strtoull(v.c_str(), nullptr, 10);
        else if (k == "--z") a.z_file = v;
        else if (k == "--out") a.out = v;
        else throw CheckError(2, "unknown option " + k);
    }
    if (a.batch < 1 || a.iterations < 1 || a.warmup < 0) throw CheckError(2, "batch and iterations must be >= 1");
    return a;
}

size_t element_size(DataType t) {
    switch (t) {
        case DataType::kFLOAT: return 4;
        case DataType::kHALF: return 2;
        case DataType::kINT32: return 4;
        case DataType::kINT8: return 1;
        case DataType::kUINT8: return 1;
        case DataType::kBOOL: return 1;
#if NV_TENSORRT_MAJOR >= 10
        case DataType::kINT64: return 8;
        case DataType::kBF16: return 2;
#endif
        default: throw CheckError(2, "unsupported I/O tensor data type " + std::to_string(static_cast<int>(t)));
    }
}

// One I/O tensor: its shape for this batch, a pinned host buffer and a device buffer.
struct Tensor {
    std::string name;
    bool input = false;
    DataType dtype = DataType::kFLOAT;
    Dims shape{};
    size_t bytes = 0;
    void* host = nullptr;
    void* device = nullptr;
};

size_t volume(const Dims& d) {
    size_t v = 1;
    for (int i = 0; i < d.nbDims; ++i) v *= static_cast<size_t>(d.d[i]);
    return v;
}

std::string dims_str(const Dims& d) {
    std::string s = "(";
    for (int i = 0; i < d.nbDims; ++i) s += (i ? ", " : "") + std::to_string(d.d[i]);
    return s + ")";
}

// Set every input's batch dimension, checked against optimization profile 0.
void set_input_shapes(ICudaEngine& engine, IExecutionContext& ctx, std::vector<Tensor>& io, int batch) {
    for (Tensor& t : io) {
        if (!t.input) continue;
        Dims d = engine.getTensorShape(t.name.c_str());
        Dims lo = engine.getProfileShape(t.name.c_str(), 0, OptProfileSelector::kMIN);
        Dims hi = engine.getProfileShape(t.name.c_str(), 0, OptProfileSelector::kMAX);
        if (d.nbDims > 0 && d.d[0] == -1) {
            if (batch < lo.d[0] || batch > hi.d[0])
                throw CheckError(2, "--batch " + std::to_string(batch) + " is outside the engine's profile for '" +
                                        t.name + "' [" + std::to_string(lo.d[0]) + ", " + std::to_string(hi.d[0]) + "]");
            d.d[0] = batch;
        }
        for (int i = 1; i < d.nbDims; ++i)
            if (d.d[i] == -1) d.d[i] = hi.d[i];  // genedge graphs only have a dynamic batch
        if (!ctx.setInputShape(t.name.c_str(), d))
            throw CheckError(2, "TensorRT refused shape " + dims_str(d) + " for input '" + t.name + "'");
        t.shape = d;
    }
    for (Tensor& t : io)
        if (!t.input) t.shape = ctx.getTensorShape(t.name.c_str());
}

void allocate(IExecutionContext& ctx, std::vector<Tensor>& io) {
    for (Tensor& t : io) {
        t.bytes = volume(t.shape) * element_size(t.dtype);
        CUDA_CHECK(cudaMallocHost(&t.host, t.bytes));  // pinned: async copies, no staging
        CUDA_CHECK(cudaMalloc(&t.device, t.bytes));
        if (!ctx.setTensorAddress(t.name.c_str(), t.device))
            throw CheckError(1, "setTensorAddress failed for '" + t.name + "'");
    }
}

void fill_inputs(std::vector<Tensor>& io, const genedge::Bundle& b, const Args& a) {
    for (Tensor& t : io) {
        if (!t.input) continue;
        size_t n = volume(t.shape);
        if (t.name == "z" && t.dtype == DataType::kFLOAT) {
            float* z = static_cast<float*>(t.host);
            if (!a.z_file.empty()) {
                std::ifstream f(a.z_file, std::ios::binary);
                f.read(reinterpret_cast<char*>(z), static_cast<std::streamsize>(t.bytes));
                if (static_cast<size_t>(f.gcount()) != t.bytes)
                    throw CheckError(2, "--z " + a.z_file + " holds fewer than " + std::to_string(n) + " float32 values");
            } else {
                std::mt19937_64 rng(a.seed);
                std::normal_distribution<float> normal(0.f, 1.f);
                for (size_t i = 0; i < n; ++i) z[i] = normal(rng);
            }
        } else if (t.name == "label") {
            int64_t k = b.num_classes > 0 ? b.num_classes : 1;
            for (size_t i = 0; i < n; ++i) {  // default labels: i % num_classes
                if (t.dtype == DataType::kINT32) static_cast<int32_t*>(t.host)[i] = static_cast<int32_t>(i % k);
                else static_cast<int64_t*>(t.host)[i] = static_cast<int64_t>(i % k);
            }
        } else {
            std::memset(t.host, 0, t.bytes);
        }
    }
}

void write_samples(const std::string& path, const Tensor& out) {
    // uint8 NHWC (the default export): the batch side by side as PGM (C=1) or PPM (C=3).
    if (out.dtype != DataType::kUINT8 || out.shape.nbDims != 4 || (out.shape.d[3] != 1 && out.shape.d[3] != 3)) {
        std::printf("samples: not written (output '%s' is not uint8 NHWC with 1 or 3 channels)\n", out.name.c_str());
        return;
    }
    int n = out.shape.d[0], h = out.shape.d[1], w = out.shape.d[2], c = out.shape.d[3];
    std::vector<uint8_t> strip(static_cast<size_t>(n) * h * w * c);
    const uint8_t* src = static_cast<const uint8_t*>(out.host);
    for (int i = 0; i < n; ++i)
        for (int y = 0; y < h; ++y)
            std::memcpy(&strip[(static_cast<size_t>(y) * n * w + static_cast<size_t>(i) * w) * c],
                        src + ((static_cast<size_t>(i) * h + y) * w) * c, static_cast<size_t>(w) * c);
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) throw CheckError(2, "cannot write " + path);
    std::fprintf(f, "P%d\n%d %d\n255\n", c == 1 ? 5 : 6, n * w, h);
    std::fwrite(strip.data(), 1, strip.size(), f);
    std::fclose(f);
    std::printf("samples: %s (%d images)\n", path.c_str(), n);
}

struct Timings {
    std::vector<double> latency, enqueue, h2d, compute, d2h;  // ms per iteration
};

class Runner {
public:
    Runner(IExecutionContext& ctx, std::vector<Tensor>& io) : ctx_(ctx), io_(io) {
        CUDA_CHECK(cudaStreamCreate(&stream_));
        for (cudaEvent_t* e : {&start_, &h2d_, &compute_, &end_}) CUDA_CHECK(cudaEventCreate(e));
    }
    ~Runner() {
        if (exec_) cudaGraphExecDestroy(exec_);
        if (graph_) cudaGraphDestroy(graph_);
        for (cudaEvent_t e : {start_, h2d_, compute_, end_}) cudaEventDestroy(e);
        cudaStreamDestroy(stream_);
    }

    // Capture one enqueueV3 into a CUDA graph (after a warm-up run). False: not capturable.
    bool capture() {
        cudaGraph_t graph = nullptr;
        CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
        bool enqueued = ctx_.enqueueV3(stream_);
        cudaError_t ended = cudaStreamEndCapture(stream_, &graph);
        if (!enqueued || ended != cudaSuccess || !graph ||
            cudaGraphInstantiateWithFlags(&exec_, graph, 0) != cudaSuccess) {
            if (graph) cudaGraphDestroy(graph);
            exec_ = nullptr;
            (void)cudaGetLastError();  // clear the capture error; run without a graph
            return false;
        }
        graph_ = graph;
        return true;
    }

    void run(Timings* t) {
        using clock = std::chrono::steady_clock;
        CUDA_CHECK(cudaEventRecord(start_, stream_));
        for (Tensor& x : io_)
            if (x.input) CUDA_CHECK(cudaMemcpyAsync(x.device, x.host, x.bytes, cudaMemcpyHostToDevice, stream_));
        CUDA_CHECK(cudaEventRecord(h2d_, stream_));
        auto e0 = clock::now();
        if (exec_) CUDA_CHECK(cudaGraphLaunch(exec_, stream_));
        else if (!ctx_.enqueueV3(stream_)) throw CheckError(1, "enqueueV3 failed");
        auto e1 = clock::now();
        CUDA_CHECK(cudaEventRecord(compute_, stream_));
        for (Tensor& x : io_)
            if (!x.input) CUDA_CHECK(cudaMemcpyAsync(x.host, x.device, x.bytes, cudaMemcpyDeviceToHost, stream_));
        CUDA_CHECK(cudaEventRecord(end_, stream_));
        CUDA_CHECK(cudaStreamSynchronize(stream_));
        if (!t) return;
        float h2d = 0, compute = 0, d2h = 0, total = 0;
        CUDA_CHECK(cudaEventElapsedTime(&h2d, start_, h2d_));
        CUDA_CHECK(cudaEventElapsedTime(&compute, h2d_, compute_));
        CUDA_CHECK(cudaEventElapsedTime(&d2h, compute_, end_));
        CUDA_CHECK(cudaEventElapsedTime(&total, start_, end_));
        t->h2d.push_back(h2d);
        t->compute.push_back(compute);
        t->d2h.push_back(d2h);
        t->latency.push_back(total);  // trtexec's "Latency": H2D + GPU compute + D2H
        t->enqueue.push_back(std::chrono::duration<double, std::milli>(e1 - e0).count());
    }

private:
    IExecutionContext& ctx_;
    std::vector<Tensor>& io_;
    cudaStream_t stream_ = nullptr;
    cudaEvent_t start_ = nullptr, h2d_ = nullptr, compute_ = nullptr, end_ = nullptr;
    cudaGraph_t graph_ = nullptr;
    cudaGraphExec_t exec_ = nullptr;
};

int run(const Args& a) {
    const genedge::Version trt = genedge::Version::from_lib(getInferLibVersion());
    int device = 0;
    cudaDeviceProp prop{};
    CUDA_CHECK(cudaGetDevice(&device));
    CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    const std::string cc = std::to_string(prop.major) + "." + std::to_string(prop.minor);
    std::printf("TensorRT %s, GPU %s (compute capability %s)\n", trt.str().c_str(), prop.name, cc.c_str());

    genedge::Bundle bundle = genedge::read_bundle(a.bundle);
    const genedge::EngineRecord& rec =
        genedge::pick_engine(bundle, a.precision, trt, cc, a.allow_version_compatible);
    std::vector<char> plan = genedge::read_verified(bundle, rec);  // sha256 checked first
    std::printf("engine: %s (%s, built with TensorRT %s for sm%s), sha256 ok\n", rec.file.c_str(),
                rec.precision.c_str(), rec.tensorrt.str().c_str(), rec.compute_capability.c_str());

    Logger logger;
    std::unique_ptr<IRuntime> runtime{createInferRuntime(logger)};
    if (!runtime) throw CheckError(3, "createInferRuntime failed");
    if (rec.version_compatible) {  // pick_engine returned it: --allow-version-compatible was given
#if NV_TENSORRT_MAJOR > 8 || (NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR >= 6)
        runtime->setEngineHostCodeAllowed(true);
#else
        throw CheckError(3, "version-compatible engines need TensorRT >= 8.6");
#endif
    }
    if (rec.dla_core >= 0) runtime->setDLACore(rec.dla_core);
    std::unique_ptr<ICudaEngine> engine{runtime->deserializeCudaEngine(plan.data(), plan.size())};
    if (!engine) throw CheckError(3, "TensorRT could not deserialize '" + rec.file + "' (see the [TensorRT] lines); rebuild it on this device.");
    plan.clear();
    plan.shrink_to_fit();
    std::unique_ptr<IExecutionContext> ctx{engine->createExecutionContext()};
    if (!ctx) throw CheckError(3, "createExecutionContext failed (out of GPU memory?)");

    std::vector<Tensor> io;
    for (int32_t i = 0; i < engine->getNbIOTensors(); ++i) {
        Tensor t;
        t.name = engine->getIOTensorName(i);
        t.input = engine->getTensorIOMode(t.name.c_str()) == TensorIOMode::kINPUT;
        t.dtype = engine->getTensorDataType(t.name.c_str());
        io.push_back(t);
    }
    set_input_shapes(*engine, *ctx, io, a.batch);
    allocate(*ctx, io);
    fill_inputs(io, bundle, a);
    for (const Tensor& t : io)
        std::printf("%s '%s' %s\n", t.input ? "input " : "output", t.name.c_str(), dims_str(t.shape).c_str());

    Timings timings;
    {
        Runner runner(*ctx, io);
        for (int i = 0; i < std::max(1, a.warmup); ++i) runner.run(nullptr);  // also does TRT's deferred setup
        if (a.cuda_graph) std::printf("CUDA graph: %s\n", runner.capture() ? "captured" : "capture failed; plain enqueueV3");
        auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < a.iterations; ++i) runner.run(&timings);
        double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::printf("=== Performance summary (%d iterations, batch %d) ===\n", a.iterations, a.batch);
        std::printf("Throughput: %.2f qps (%.1f samples/s)\n", a.iterations / secs, a.iterations * a.batch / secs);
    }
    using genedge::format_summary;
    using genedge::summarise;
    std::printf("%s\n", format_summary("Latency", summarise(timings.latency)).c_str());
    std::printf("%s\n", format_summary("Enqueue Time", summarise(timings.enqueue)).c_str());
    std::printf("%s\n", format_summary("H2D Latency", summarise(timings.h2d)).c_str());
    std::printf("%s\n", format_summary("GPU Compute Time", summarise(timings.compute)).c_str());
    std::printf("%s\n", format_summary("D2H Latency", summarise(timings.d2h)).c_str());

    for (const Tensor& t : io)
        if (!t.input) write_samples(a.out, t);
    for (Tensor& t : io) {
        cudaFreeHost(t.host);
        cudaFree(t.device);
    }
    return 0;  // ctx, engine, runtime are destroyed in that order
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(parse(argc, argv));
    } catch (const CheckError& e) {
        std::fprintf(stderr, "trt_host: %s\n", e.what());
        return e.code;
    }
}
