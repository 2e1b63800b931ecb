/* genedge.h: the C ABI of the genedge runtime (docs/embedding.md).
 *
 * A C or C++ program opens a bundle written by `genedge export`, samples images into
 * buffers it owns, drives the real-time stream loop and reads its counters. The library
 * (libgenedge.so) embeds CPython and calls genedge.runtime; no Python object, exception
 * or allocation crosses this boundary: only plain C types and caller-owned memory.
 *
 * Return codes are the CLI's exit codes: 0 ok, 1 internal error (a bug), 2 bad input or
 * corrupt artifact, 3 incompatible environment, 4 integrity or security refusal.
 * genedge_stream_next() also returns GENEDGE_END (-1) once the stream is over.
 * On any non-zero code, genedge_last_error() holds a one-line message that says what
 * was received, what was expected and how to fix it.
 *
 * Threading: every function may be called from any thread. Calls on one handle are
 * serialised by the handle; calls on different handles run concurrently, and the Python
 * interpreter lock is not held while ONNX Runtime runs inference. See docs/embedding.md.
 */
#ifndef GENEDGE_H
#define GENEDGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on any incompatible change of a struct or signature below. */
#define GENEDGE_ABI_VERSION 1

#if defined(__GNUC__)
#define GENEDGE_API __attribute__((visibility("default")))
#else
#define GENEDGE_API
#endif

enum {
    GENEDGE_OK = 0,
    GENEDGE_ERR_INTERNAL = 1,    /* a bug: the message carries the traceback */
    GENEDGE_ERR_BAD_INPUT = 2,   /* wrong argument, buffer size, label; missing/corrupt bundle;
                                    a closed or unknown handle */
    GENEDGE_ERR_ENVIRONMENT = 3, /* backend or package not available, interpreter not usable */
    GENEDGE_ERR_INTEGRITY = 4,   /* hash, schema or path check of the bundle failed */
    GENEDGE_END = -1             /* genedge_stream_next: no more frames (not an error) */
};

enum { GENEDGE_DTYPE_UINT8 = 1, GENEDGE_DTYPE_FLOAT32 = 2 };
enum { GENEDGE_LAYOUT_NHWC = 0, GENEDGE_LAYOUT_NCHW = 1 };

/* An open bundle. Opaque: a token the library never dereferences and never reuses, so a
 * call with a closed or unknown handle returns GENEDGE_ERR_BAD_INPUT. Free it with
 * genedge_close(). */
typedef struct genedge genedge_t;

/* Options of genedge_open(). Zero-initialise or call genedge_options_init(): NULL strings
 * and 0 mean "the runtime's default". */
typedef struct genedge_options {
    const char* backend;   /* "auto" (default), "ort-cpu", "openvino", "ort-cuda", "ort-trt", "tensorrt" */
    const char* precision; /* NULL: the runtime's choice; "fp32", "fp16", "int8" */
    int32_t threads;       /* intra-op CPU threads; 0: the runtime's default; negative or more
                              than 4 per CPU: GENEDGE_ERR_BAD_INPUT */
    int32_t skip_input_checks; /* nonzero: skip the runtime's checks of caller latents (shape,
                                  NaN/Inf); buffer sizes and labels are always checked */
} genedge_options_t;

/* What one sample looks like. */
typedef struct genedge_output_info {
    int32_t height, width, channels;
    int32_t dtype;           /* GENEDGE_DTYPE_UINT8: samples are always uint8 images */
    int32_t layout;          /* GENEDGE_LAYOUT_NHWC: out[n][y][x][c] */
    int32_t num_classes;     /* 0: unconditional; else labels are 0..num_classes-1 */
    int32_t latent_dim;      /* Z: genedge_sample_latents takes n*Z floats */
    int32_t reserved;
    size_t bytes_per_sample; /* out_size of genedge_sample(n) must be n * bytes_per_sample */
    char backend[32];        /* the backend actually used, e.g. "ort-cpu" */
    char precision[16];      /* the precision actually used, e.g. "fp32" */
} genedge_output_info_t;

/* Options of genedge_stream_start(); NULL means all defaults (zero-initialise, then set). */
typedef struct genedge_stream_options {
    const char* walk;      /* latent path: NULL/"circle" (a seamless loop), "lerp", "slerp" */
    const char* late;      /* a late frame: NULL/"drop" (skip it, stay on schedule), "block" */
    int32_t batch;         /* images per frame; 0: 1. Frames then hold batch images */
    float truncation;      /* (0, 1]; 0: 1 (none) */
    uint64_t seed;         /* seeds the walk */
    const int64_t* labels; /* NULL: default labels; else num_labels (1 or batch) class ids */
    size_t num_labels;
} genedge_stream_options_t;

/* One frame delivered by genedge_stream_next(). Times are seconds on the runtime's
 * monotonic clock (Python's time.perf_counter). */
typedef struct genedge_frame_info {
    int64_t index;      /* schedule slot: due at t0 + index / fps (gaps: dropped frames) */
    double t_due;       /* when the frame was due */
    double t_ready;     /* when its inference finished */
    double t_delivered; /* when it was handed over */
    double latency_s;   /* latent + inference time of this frame */
} genedge_frame_info_t;

/* The stream's counters so far (also valid after genedge_stream_stop). Before any stream:
 * zeros, with fps values NaN. Jitter: |actual - scheduled| interval between deliveries. */
typedef struct genedge_stream_stats {
    int64_t frames;           /* frames delivered */
    int64_t missed_deadlines; /* late deliveries plus skipped slots */
    int64_t dropped;          /* slots that showed no frame */
    int64_t late_delivered;   /* late="block": frames delivered late */
    int64_t nonfinite;        /* frames whose float output held NaN/Inf */
    double elapsed_s;
    double fps_target, fps_achieved;
    double jitter_p50_s, jitter_p99_s, jitter_max_s;
    double latency_p50_s, latency_p99_s, latency_max_s;
} genedge_stream_stats_t;

/* GENEDGE_ABI_VERSION of the library actually loaded (compare with the header's). */
GENEDGE_API int genedge_abi_version(void);

/* Defaults: backend "auto", precision NULL, threads 0, input checks on. */
GENEDGE_API void genedge_options_init(genedge_options_t* options);

/* Open BUNDLE (the folder holding manifest.json). options may be NULL. On success *out is a
 * new handle; on failure *out is NULL and genedge_last_error(NULL) says why. The first call
 * starts the embedded Python interpreter (see docs/embedding.md: GENEDGE_PYTHON). */
GENEDGE_API int genedge_open(const char* bundle, const genedge_options_t* options, genedge_t** out);

GENEDGE_API int genedge_output_info(genedge_t* h, genedge_output_info_t* info);

/* n seeded samples (same seed -> same pixels as Python's Sampler.sample(n, seed=seed)) into
 * OUT, which must hold exactly n * bytes_per_sample bytes (out_size). labels: n class ids or
 * NULL (default labels: i % num_classes). */
GENEDGE_API int genedge_sample(genedge_t* h, size_t n, uint64_t seed, const int64_t* labels,
                               void* out, size_t out_size);

/* As genedge_sample, with truncation in (0, 1] (1: none). */
GENEDGE_API int genedge_sample_truncated(genedge_t* h, size_t n, uint64_t seed, float truncation,
                                         const int64_t* labels, void* out, size_t out_size);

/* Samples from caller latents: z holds z_count = n * latent_dim float32 values, row-major. */
GENEDGE_API int genedge_sample_latents(genedge_t* h, size_t n, const float* z, size_t z_count,
                                       const int64_t* labels, void* out, size_t out_size);

/* Start the real-time stream at FPS for SECONDS (<= 0: until genedge_stream_stop). A running
 * stream of this handle is stopped first. options may be NULL. */
GENEDGE_API int genedge_stream_start(genedge_t* h, double fps, double seconds,
                                     const genedge_stream_options_t* options);

/* Wait until the next frame is due and copy it into OUT; out_size must be
 * batch * bytes_per_sample. info may be NULL. Returns GENEDGE_END when the stream is over
 * (its worker is then stopped; the stats stay readable). */
GENEDGE_API int genedge_stream_next(genedge_t* h, void* out, size_t out_size,
                                    genedge_frame_info_t* info);

/* Stop the stream (no-op when none runs). Its stats stay readable. */
GENEDGE_API int genedge_stream_stop(genedge_t* h);

GENEDGE_API int genedge_stream_stats(genedge_t* h, genedge_stream_stats_t* stats);

/* The message of the last failed call: on handle H, or on the calling thread when H is NULL
 * (use NULL after a failed genedge_open). "" when none. The pointer stays valid until the
 * calling thread's next genedge call. */
GENEDGE_API const char* genedge_last_error(const genedge_t* h);

/* Stop any stream, release the bundle and free H. NULL is a no-op. Returns 0, 1, or
 * GENEDGE_ERR_BAD_INPUT when H is already closed or was never opened. */
GENEDGE_API int genedge_close(genedge_t* h);

/* Optional, once, at the end: finalise the embedded interpreter (only if this library
 * started it). Call it after every handle is closed, from the thread that made the first
 * genedge call. Afterwards genedge_open returns GENEDGE_ERR_ENVIRONMENT. */
GENEDGE_API int genedge_shutdown(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* GENEDGE_H */
