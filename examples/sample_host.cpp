// sample_host: a C++ program driving a genedge bundle through the C ABI (genedge.h).
//
//   sample_host BUNDLE [--out grid.ppm] [--seed 0] [--fps 30] [--seconds 1]
//                      [--backend auto] [--precision fp32]
//
// Opens the bundle, samples 100 images into its own buffer, writes them as a 10x10 grid
// (PGM for 1 channel, PPM for 3), runs a short real-time stream and prints its counters.
// Exit code: the genedge return code of the first failing call (0 on success).
#include <genedge.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr int kGrid = 10;  // 10 x 10 samples

struct Args {
    std::string bundle, out = "grid.ppm";
    std::string backend = "auto", precision;
    uint64_t seed = 0;
    double fps = 30.0, seconds = 1.0;
};

bool parse(int argc, char** argv, Args* a) {
    if (argc < 2) return false;
    a->bundle = argv[1];
    for (int i = 2; i + 1 < argc; i += 2) {
        std::string k = argv[i], v = argv[i + 1];
        if (k == "--out") a->out = v;
        else if (k == "--seed") a->seed = std::strtoull(v.c_str(), nullptr, 10);
        else if (k == "--fps") a->fps = std::atof(v.c_str());
        else if (k == "--seconds") a->seconds = std::atof(v.c_str());
        else if (k == "--backend") a->backend = v;
        else if (k == "--precision") a->precision = v;
        else return false;
    }
    return (argc % 2) == 0 && a->fps > 0 && a->seconds > 0;  // a bounded stream
}

int fail(const genedge_t* h, const char* what, int rc) {
    std::fprintf(stderr, "sample_host: %s failed (code %d): %s\n", what, rc, genedge_last_error(h));
    return rc;
}

// Tile n = kGrid*kGrid NHWC uint8 samples into one (kGrid*H) x (kGrid*W) image.
std::vector<uint8_t> tile(const std::vector<uint8_t>& s, int h, int w, int c) {
    std::vector<uint8_t> grid(static_cast<size_t>(kGrid * h) * kGrid * w * c);
    const size_t row = static_cast<size_t>(w) * c, grid_row = row * kGrid;
    for (int i = 0; i < kGrid * kGrid; ++i) {
        const uint8_t* src = s.data() + static_cast<size_t>(i) * h * row;
        uint8_t* dst = grid.data() + static_cast<size_t>(i / kGrid) * h * grid_row + (i % kGrid) * row;
        for (int y = 0; y < h; ++y) std::memcpy(dst + y * grid_row, src + y * row, row);
    }
    return grid;
}

bool ends_with(const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// A .ppm file is always colour (P6: a gray image is written as equal R, G and B);
// otherwise gray images are PGM (P5) and colour ones PPM.
bool write_pnm(const std::string& path, const std::vector<uint8_t>& px, int h, int w, int c) {
    std::vector<uint8_t> rgb;
    const std::vector<uint8_t>* out = &px;
    if (c == 1 && ends_with(path, ".ppm")) {
        rgb.resize(px.size() * 3);
        for (size_t i = 0; i < px.size(); ++i) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = px[i];
        out = &rgb;
        c = 3;
    }
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) return false;
    std::fprintf(f, "P%d\n%d %d\n255\n", c == 1 ? 5 : 6, w, h);
    bool ok = std::fwrite(out->data(), 1, out->size(), f) == out->size();
    return std::fclose(f) == 0 && ok;
}

}  // namespace

int main(int argc, char** argv) {
    Args a;
    if (!parse(argc, argv, &a)) {
        std::fprintf(stderr, "usage: %s BUNDLE [--out grid.ppm] [--seed S] [--fps F] [--seconds S] "
                             "[--backend B] [--precision P]\n", argv[0]);
        return 2;
    }
    if (genedge_abi_version() != GENEDGE_ABI_VERSION) {
        std::fprintf(stderr, "sample_host: libgenedge ABI %d, header %d\n", genedge_abi_version(),
                     GENEDGE_ABI_VERSION);
        return 3;
    }
    genedge_options_t opts;
    genedge_options_init(&opts);
    opts.backend = a.backend.c_str();
    opts.precision = a.precision.empty() ? nullptr : a.precision.c_str();

    genedge_t* h = nullptr;
    int rc = genedge_open(a.bundle.c_str(), &opts, &h);
    if (rc) return fail(nullptr, "genedge_open", rc);

    genedge_output_info_t info;
    if ((rc = genedge_output_info(h, &info))) return fail(h, "genedge_output_info", rc);
    std::printf("bundle: %dx%dx%d, latent %d, classes %d, backend %s, precision %s\n", info.height,
                info.width, info.channels, info.latent_dim, info.num_classes, info.backend,
                info.precision);

    // 1. A 10x10 grid sampled straight into our own buffer.
    const size_t n = kGrid * kGrid;
    std::vector<uint8_t> samples(n * info.bytes_per_sample);
    if ((rc = genedge_sample(h, n, a.seed, nullptr, samples.data(), samples.size())))
        return fail(h, "genedge_sample", rc);
    if (info.dtype == GENEDGE_DTYPE_UINT8 && (info.channels == 1 || info.channels == 3)) {
        auto grid = tile(samples, info.height, info.width, info.channels);
        if (!write_pnm(a.out, grid, kGrid * info.height, kGrid * info.width, info.channels)) {
            std::fprintf(stderr, "sample_host: cannot write %s\n", a.out.c_str());
            return 2;
        }
        std::printf("grid: %s (%d samples, seed %llu)\n", a.out.c_str(), kGrid * kGrid,
                    static_cast<unsigned long long>(a.seed));
    } else {
        std::printf("grid: skipped (only uint8 images with 1 or 3 channels are written)\n");
    }

    // 2. A short real-time stream into one reused frame buffer.
    std::vector<uint8_t> frame(info.bytes_per_sample);
    genedge_stream_options_t so = {};
    so.seed = a.seed;
    if ((rc = genedge_stream_start(h, a.fps, a.seconds, &so))) return fail(h, "genedge_stream_start", rc);
    genedge_frame_info_t fi;
    long delivered = 0;
    while ((rc = genedge_stream_next(h, frame.data(), frame.size(), &fi)) == GENEDGE_OK) ++delivered;
    if (rc != GENEDGE_END) return fail(h, "genedge_stream_next", rc);
    genedge_stream_stats_t st;
    if ((rc = genedge_stream_stats(h, &st))) return fail(h, "genedge_stream_stats", rc);
    std::printf("stream: frames=%lld delivered=%ld missed_deadlines=%lld dropped=%lld "
                "fps_target=%.1f fps_achieved=%.1f jitter_p99_ms=%.3f latency_p99_ms=%.3f\n",
                static_cast<long long>(st.frames), delivered,
                static_cast<long long>(st.missed_deadlines), static_cast<long long>(st.dropped),
                st.fps_target, st.fps_achieved, st.jitter_p99_s * 1e3, st.latency_p99_s * 1e3);

    if ((rc = genedge_close(h))) return fail(nullptr, "genedge_close", rc);
    genedge_shutdown();
    return 0;
}
