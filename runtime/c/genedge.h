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

/* ------------------------------------------------------------- text generation (ar bundles)
 *
 * genedge_open also opens an ar bundle (a transformer language model, or the character-level
 * RNN); its handle takes the calls below, and the image calls above refuse it (and these
 * refuse an image handle) with GENEDGE_ERR_BAD_INPUT. Text is UTF-8 and never split inside a
 * character. Drive a generation with genedge_generate_start + genedge_generate_next (you own
 * the loop), or hand genedge_generate a callback. One generation at a time per handle:
 * starting one ends the previous. */

/* What the bundle generates with. */
typedef struct genedge_text_info {
    int32_t vocab_size;
    int32_t max_context;    /* tokens of prompt + output the model takes; 0: no limit (RNN) */
    int32_t is_transformer; /* 1: transformer (KV cache); 0: character-level RNN */
    int32_t reserved;
    char backend[32];
    char precision[16];
} genedge_text_info_t;

/* Sampling options; zero-initialise, then set: every 0 / NULL means the default named. */
typedef struct genedge_generate_options {
    int32_t max_new_tokens;   /* 0: 200 */
    float temperature;        /* 0: greedy (argmax); else softmax(logits / temperature) */
    int32_t top_k;            /* 0: off; else keep the k most likely tokens */
    float top_p;              /* 0 or 1: off; else the smallest set holding this probability */
    float repetition_penalty; /* 0 or 1: off; > 1 discourages tokens already seen (transformer) */
    int32_t ignore_eos;       /* 0: stop at the model's end-of-text token; 1: go on (transformer) */
    uint64_t seed;            /* same seed, same options -> same text */
    const char* const* stop;  /* NULL or num_stop UTF-8 strings that end the text (not included;
                                 transformer) */
    size_t num_stop;
} genedge_generate_options_t;

/* Counters of the current or last generation (before any: zeros, times NaN). */
typedef struct genedge_text_stats {
    int64_t prompt_tokens;
    int64_t tokens;            /* new tokens generated so far */
    double ttft_s;             /* start to the first new token (includes the prompt's prefill) */
    double inter_token_p50_s;  /* time each later token took to produce: median ... */
    double inter_token_p99_s;  /* ... and 99th percentile (the host's time between calls not in) */
    double tokens_per_s;       /* (tokens - 1) / (last token - first token), wall clock */
    double elapsed_s;          /* start to the last token */
    char stop_reason[16];      /* "length", "eos", "stop", "callback"; "" while running */
} genedge_text_stats_t;

/* Called with each piece of text (not NUL-terminated; len bytes, whole characters). Return 0
 * to go on, nonzero to end the generation (stop_reason "callback"). Runs on the thread that
 * called genedge_generate, with no genedge lock held: it may call genedge functions, also on
 * this handle (genedge_generate_stats), but must not start another generation on it. */
typedef int (*genedge_piece_fn)(const char* piece, size_t len, void* user);

GENEDGE_API int genedge_text_info(genedge_t* h, genedge_text_info_t* info);

/* Start generating from PROMPT (UTF-8, may be ""). options may be NULL (all defaults). Options
 * an RNN bundle does not have (repetition_penalty, ignore_eos, stop) are refused for it. */
GENEDGE_API int genedge_generate_start(genedge_t* h, const char* prompt,
                                       const genedge_generate_options_t* options);

/* Generate until the next piece of text is complete and copy it into BUF as a NUL-terminated
 * string of *len bytes (len may be NULL). cap: BUF's size, at least 5; a longer piece comes out
 * over several calls, split between characters. Returns GENEDGE_END once the generation is
 * over (then *len is 0). */
GENEDGE_API int genedge_generate_next(genedge_t* h, char* buf, size_t cap, size_t* len);

/* The whole loop: start, then on_piece(piece, len, user) for every piece until the end or until
 * on_piece returns nonzero. Returns 0, or the code of the call that failed. */
GENEDGE_API int genedge_generate(genedge_t* h, const char* prompt,
                                 const genedge_generate_options_t* options,
                                 genedge_piece_fn on_piece, void* user);

GENEDGE_API int genedge_generate_stats(genedge_t* h, genedge_text_stats_t* stats);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* GENEDGE_H */
