/* genedge_probe: a plain-C host that exercises libgenedge for tests/runtime/test_capi.py.
 *
 *   genedge_probe raw      BUNDLE N SEED OUT   N samples (default labels) -> raw bytes in OUT
 *   genedge_probe latents  BUNDLE N ZFILE OUT  images of N*Z raw float32 latents -> OUT
 *   genedge_probe threads  BUNDLE N SEED OUT   open on thread A, sample on thread B, while
 *                                              threads C and D hammer a second handle
 *   genedge_probe errors   BUNDLE              one line per error case: case=.. rc=.. msg=..
 *   genedge_probe handles  BUNDLE              closed, forged and reused handles; bad threads
 *   genedge_probe leak     BUNDLE N            RSS after warm-up and after N more samples
 *   genedge_probe shutdown BUNDLE              close, genedge_shutdown, then open again
 *   genedge_probe gil      BIG SMALL           short SMALL calls while a thread runs long
 *                                              BIG inferences: is the GIL free meanwhile?
 *
 * Written in C on purpose: it proves genedge.h is plain C.
 */
#include <genedge.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int die(const genedge_t* h, const char* what, int rc) {
    fprintf(stderr, "genedge_probe: %s failed (code %d): %s\n", what, rc, genedge_last_error(h));
    return rc ? rc : 1;
}

static int write_file(const char* path, const void* p, size_t n) {
    FILE* f = fopen(path, "wb");
    if (!f) return 2;
    size_t w = fwrite(p, 1, n, f);
    return (fclose(f) == 0 && w == n) ? 0 : 2;
}

static long rss_kb(void) {
    FILE* f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) kb = strtol(line + 6, NULL, 10);
    if (f) fclose(f);
    return kb;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static int open_bundle(const char* path, genedge_t** h, genedge_output_info_t* info) {
    genedge_options_t o;
    genedge_options_init(&o);
    o.backend = "ort-cpu";
    o.threads = 1;
    int rc = genedge_open(path, &o, h);
    if (rc) return die(NULL, "genedge_open", rc);
    rc = genedge_output_info(*h, info);
    if (rc) return die(*h, "genedge_output_info", rc);
    return 0;
}

static int cmd_raw(const char* bundle, size_t n, uint64_t seed, const char* out) {
    genedge_t* h;
    genedge_output_info_t info;
    int rc = open_bundle(bundle, &h, &info);
    if (rc) return rc;
    size_t size = n * info.bytes_per_sample;
    unsigned char* buf = malloc(size);
    rc = genedge_sample(h, n, seed, NULL, buf, size);
    if (rc) return die(h, "genedge_sample", rc);
    rc = write_file(out, buf, size);
    free(buf);
    genedge_close(h);
    return rc;
}

static int cmd_latents(const char* bundle, size_t n, const char* zfile, const char* out) {
    genedge_t* h;
    genedge_output_info_t info;
    int rc = open_bundle(bundle, &h, &info);
    if (rc) return rc;
    size_t count = n * (size_t)info.latent_dim;
    float* z = malloc(count * sizeof(float));
    FILE* f = fopen(zfile, "rb");
    if (!f || fread(z, sizeof(float), count, f) != count) return die(NULL, "reading the latents", 2);
    fclose(f);
    unsigned char* buf = malloc(n * info.bytes_per_sample);
    rc = genedge_sample_latents(h, n, z, count, NULL, buf, n * info.bytes_per_sample);
    if (rc) return die(h, "genedge_sample_latents", rc);
    rc = write_file(out, buf, n * info.bytes_per_sample);
    free(z);
    free(buf);
    genedge_close(h);
    return rc;
}

/* ---- threads: the handle crosses threads; another handle runs concurrently */

struct job {
    const char* bundle;
    genedge_t* h;
    genedge_output_info_t info;
    size_t n;
    uint64_t seed;
    unsigned char* buf;
    int rc;
    int loops;
};

static void* job_open(void* p) {
    struct job* j = p;
    j->rc = open_bundle(j->bundle, &j->h, &j->info);
    return NULL;
}

static void* job_sample(void* p) {
    struct job* j = p;
    size_t size = j->n * j->info.bytes_per_sample;
    for (int i = 0; i < j->loops && !j->rc; ++i) {
        j->rc = genedge_sample(j->h, j->n, j->seed, NULL, j->buf, size);
        if (j->rc) die(j->h, "genedge_sample (thread)", j->rc);
    }
    return NULL;
}

static int cmd_threads(const char* bundle, size_t n, uint64_t seed, const char* out) {
    struct job a = {bundle, NULL, {0}, n, seed, NULL, 0, 1};
    struct job other = {bundle, NULL, {0}, 8, 7, NULL, 0, 50};
    pthread_t t1, t2, t3, t4;
    pthread_create(&t1, NULL, job_open, &a); /* handle A is opened on thread 1 ... */
    pthread_create(&t2, NULL, job_open, &other);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    if (a.rc || other.rc) return a.rc ? a.rc : other.rc;
    a.buf = malloc(n * a.info.bytes_per_sample);
    other.buf = malloc(other.n * other.info.bytes_per_sample);
    struct job other2 = other; /* a second thread on the same handle: serialised by it */
    other2.buf = malloc(other.n * other.info.bytes_per_sample);
    pthread_create(&t3, NULL, job_sample, &other);
    pthread_create(&t4, NULL, job_sample, &other2);
    pthread_create(&t1, NULL, job_sample, &a); /* ... and sampled on another thread */
    pthread_join(t1, NULL);
    pthread_join(t3, NULL);
    pthread_join(t4, NULL);
    int rc = a.rc ? a.rc : other.rc ? other.rc : other2.rc;
    if (!rc && memcmp(other.buf, other2.buf, other.n * other.info.bytes_per_sample) != 0) {
        fprintf(stderr, "genedge_probe: two threads got different pixels for one seed\n");
        rc = 1;
    }
    if (!rc) rc = write_file(out, a.buf, n * a.info.bytes_per_sample);
    genedge_close(a.h); /* closed on the main thread */
    genedge_close(other.h);
    free(a.buf);
    free(other.buf);
    free(other2.buf);
    if (!rc) printf("threads ok\n");
    return rc;
}

/* ---- errors: codes and messages */

static void report(const char* name, int rc, const char* msg) {
    printf("case=%s rc=%d msg=%s\n", name, rc, msg && *msg ? msg : "(empty)");
}

static int cmd_errors(const char* bundle) {
    genedge_t* h = (genedge_t*)0x1;
    int rc = genedge_open("/nonexistent/genedge-bundle", NULL, &h);
    report("open_missing", rc, genedge_last_error(NULL));
    if (h != NULL) report("open_missing_handle_not_null", 1, "");
    rc = genedge_open(bundle, NULL, NULL);
    report("open_null_out", rc, genedge_last_error(NULL));
    genedge_options_t o;
    genedge_options_init(&o);
    o.backend = "no-such-backend";
    rc = genedge_open(bundle, &o, &h);
    report("open_bad_backend", rc, genedge_last_error(NULL));
    size_t long_len = (size_t)1 << 20; /* a 1 MiB path: one line back, not a traceback */
    char* long_path = malloc(long_len + 1);
    if (!long_path) return 1;
    memset(long_path, 'a', long_len);
    long_path[long_len] = '\0';
    rc = genedge_open(long_path, NULL, &h);
    const char* long_msg = genedge_last_error(NULL);
    report("open_long_path", rc, strchr(long_msg, '\n') ? "MULTI-LINE" : long_msg);
    free(long_path);

    genedge_output_info_t info;
    if ((rc = open_bundle(bundle, &h, &info))) return rc;
    size_t bps = info.bytes_per_sample;
    unsigned char* buf = malloc(4 * bps);
    rc = genedge_sample(h, 4, 0, NULL, buf, 4 * bps - 1);
    report("sample_wrong_size", rc, genedge_last_error(h));
    rc = genedge_sample(h, 4, 0, NULL, buf, 4 * bps);
    report("sample_ok", rc, "");
    int64_t labels[4] = {0, 1, info.num_classes + 5, 0};
    rc = genedge_sample(h, 4, 0, labels, buf, 4 * bps);
    report("sample_bad_label", rc, genedge_last_error(h));
    labels[2] = -1;
    rc = genedge_sample(h, 4, 0, labels, buf, 4 * bps);
    report("sample_negative_label", rc, genedge_last_error(h));
    float z[3] = {0};
    rc = genedge_sample_latents(h, 4, z, 3, NULL, buf, 4 * bps);
    report("latents_wrong_count", rc, genedge_last_error(h));
    rc = genedge_sample(h, 0, 0, NULL, buf, 0);
    report("sample_zero", rc, genedge_last_error(h));
    rc = genedge_stream_next(h, buf, bps, NULL);
    report("stream_next_without_start", rc, genedge_last_error(h));
    rc = genedge_sample(NULL, 1, 0, NULL, buf, bps);
    report("null_handle", rc, genedge_last_error(NULL));
    rc = genedge_stream_start(h, 50.0, 0.1, NULL);
    report("stream_start", rc, genedge_last_error(h));
    rc = genedge_stream_next(h, buf, bps - 1, NULL);
    report("stream_next_wrong_size", rc, genedge_last_error(h));
    rc = genedge_stream_stop(h);
    report("stream_stop", rc, genedge_last_error(h));
    rc = genedge_close(h);
    report("close", rc, "");
    rc = genedge_close(NULL);
    report("close_null", rc, "");
    free(buf);
    return 0;
}

/* ---- handles: every call on a closed or forged handle is an error code, never a crash */

/* The call runs before its message is read (argument order is unspecified in C). */
#define CASE(name, call, h)                           \
    do {                                              \
        int case_rc = (call);                         \
        report(name, case_rc, genedge_last_error(h)); \
    } while (0)

static int cmd_handles(const char* bundle) {
    genedge_output_info_t info;
    genedge_t* h;
    int rc = open_bundle(bundle, &h, &info);
    if (rc) return rc;
    size_t bps = info.bytes_per_sample;
    unsigned char* buf = malloc(bps);
    report("close", genedge_close(h), "");
    CASE("close_again", genedge_close(h), NULL);
    CASE("sample_closed", genedge_sample(h, 1, 0, NULL, buf, bps), h);
    CASE("info_closed", genedge_output_info(h, &info), NULL);
    CASE("stream_start_closed", genedge_stream_start(h, 10.0, 0.1, NULL), NULL);
    CASE("stream_next_closed", genedge_stream_next(h, buf, bps, NULL), NULL);
    CASE("stream_stop_closed", genedge_stream_stop(h), NULL);
    genedge_stream_stats_t stats;
    CASE("stream_stats_closed", genedge_stream_stats(h, &stats), NULL);
    genedge_t* forged = (genedge_t*)buf; /* points at memory, but genedge never issued it */
    CASE("sample_forged", genedge_sample(forged, 1, 0, NULL, buf, bps), NULL);
    CASE("close_forged", genedge_close(forged), NULL);
    genedge_t* h2;
    if ((rc = open_bundle(bundle, &h2, &info))) return rc; /* the old handle must stay dead */
    report("reopened_differs", h2 == h, "");
    CASE("sample_closed_after_reopen", genedge_sample(h, 1, 0, NULL, buf, bps), NULL);
    CASE("sample_reopened", genedge_sample(h2, 1, 0, NULL, buf, bps), h2);
    CASE("close_reopened", genedge_close(h2), NULL);
    genedge_options_t o;
    genedge_options_init(&o);
    o.backend = "ort-cpu";
    genedge_t* h3 = NULL;
    o.threads = -1;
    CASE("open_negative_threads", genedge_open(bundle, &o, &h3), NULL);
    o.threads = 1000000;
    CASE("open_million_threads", genedge_open(bundle, &o, &h3), NULL);
    report("threads_handle_null", h3 != NULL, "");
    free(buf);
    return 0;
}

/* ---- leak: RSS growth over many calls, error paths included */

static int cmd_leak(const char* bundle, long n) {
    genedge_t* h;
    genedge_output_info_t info;
    int rc = open_bundle(bundle, &h, &info);
    if (rc) return rc;
    size_t bps = info.bytes_per_sample;
    unsigned char* buf = malloc(bps);
    genedge_frame_info_t fi;
    for (long i = 0; i < 500; ++i) /* warm-up: allocator pools, ORT arenas, caches */
        if ((rc = genedge_sample(h, 1, (uint64_t)i, NULL, buf, bps))) return die(h, "warm-up", rc);
    long before = rss_kb();
    double t0 = now_s();
    for (long i = 0; i < n; ++i) {
        if ((rc = genedge_sample(h, 1, (uint64_t)i, NULL, buf, bps))) return die(h, "genedge_sample", rc);
        if (i % 10 == 0 && genedge_sample(h, 1, 0, NULL, buf, bps + 1) != GENEDGE_ERR_BAD_INPUT)
            return die(h, "error path", 1);
    }
    double secs = now_s() - t0;
    long after_samples = rss_kb();
    if ((rc = genedge_stream_start(h, 1000.0, 0.05, NULL))) return die(h, "stream_start", rc);
    while ((rc = genedge_stream_next(h, buf, bps, &fi)) == GENEDGE_OK) {
    }
    if (rc != GENEDGE_END) return die(h, "stream_next", rc);
    long after = rss_kb();
    printf("samples=%ld rss_before_kb=%ld rss_after_kb=%ld rss_after_samples_kb=%ld seconds=%.3f\n", n,
           before, after, after_samples, secs);
    free(buf);
    return genedge_close(h);
}

static char g_other_error[1024];

static void* shutdown_thread(void* rc) {
    *(int*)rc = genedge_shutdown(); /* not the thread that started genedge: refused */
    snprintf(g_other_error, sizeof g_other_error, "%s", genedge_last_error(NULL));
    return NULL;
}

static int cmd_shutdown(const char* bundle) {
    genedge_t* h;
    genedge_output_info_t info;
    int rc = open_bundle(bundle, &h, &info);
    if (rc) return rc;
    rc = genedge_shutdown();
    report("shutdown_with_open_handle", rc, genedge_last_error(NULL));
    genedge_close(h);
    pthread_t other;
    int other_rc = -1;
    pthread_create(&other, NULL, shutdown_thread, &other_rc);
    pthread_join(other, NULL);
    report("shutdown_other_thread", other_rc, g_other_error);
    rc = genedge_shutdown();
    report("shutdown", rc, genedge_last_error(NULL));
    rc = genedge_open(bundle, NULL, &h);
    report("open_after_shutdown", rc, genedge_last_error(NULL));
    return 0;
}

/* ---- gil: short calls on one handle while another thread runs long inferences */

struct long_job {
    genedge_t* h;
    size_t bps;
    int calls;
    double seconds;
    volatile int done;
};

static void* long_calls(void* p) {
    struct long_job* j = p;
    unsigned char* buf = malloc(16 * j->bps);
    double t0 = now_s();
    for (int i = 0; i < j->calls; ++i)
        if (genedge_sample(j->h, 16, (uint64_t)i, NULL, buf, 16 * j->bps)) die(j->h, "long call", 1);
    j->seconds = now_s() - t0;
    j->done = 1;
    free(buf);
    return NULL;
}

static int cmp_double(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

static int cmd_gil(const char* big, const char* small) {
    struct long_job j = {NULL, 0, 8, 0.0, 0};
    genedge_t* s;
    genedge_output_info_t bi, si;
    int rc = open_bundle(big, &j.h, &bi);
    if (!rc) rc = open_bundle(small, &s, &si);
    if (rc) return rc;
    j.bps = bi.bytes_per_sample;
    unsigned char* buf = malloc(16 * j.bps > si.bytes_per_sample ? 16 * j.bps : si.bytes_per_sample);
    genedge_sample(j.h, 16, 0, NULL, buf, 16 * j.bps); /* warm both */
    for (int i = 0; i < 200; ++i) genedge_sample(s, 1, (uint64_t)i, NULL, buf, si.bytes_per_sample);
    enum { CAP = 100000 };
    double* lat = malloc(CAP * sizeof(double));
    int n = 0;
    pthread_t t;
    pthread_create(&t, NULL, long_calls, &j);
    while (!j.done && n < CAP) {
        double a = now_s();
        if ((rc = genedge_sample(s, 1, (uint64_t)n, NULL, buf, si.bytes_per_sample))) return die(s, "short call", rc);
        lat[n++] = now_s() - a;
    }
    pthread_join(t, NULL);
    qsort(lat, (size_t)n, sizeof(double), cmp_double);
    printf("long_calls=%d long_ms=%.3f short_calls_during=%d short_median_ms_during=%.3f\n", j.calls,
           j.seconds / j.calls * 1e3, n, n ? lat[n / 2] * 1e3 : 0.0);
    free(lat);
    free(buf);
    genedge_close(s);
    return genedge_close(j.h);
}

int main(int argc, char** argv) {
    if (argc >= 6 && strcmp(argv[1], "raw") == 0)
        return cmd_raw(argv[2], strtoul(argv[3], NULL, 10), strtoull(argv[4], NULL, 10), argv[5]);
    if (argc >= 6 && strcmp(argv[1], "latents") == 0)
        return cmd_latents(argv[2], strtoul(argv[3], NULL, 10), argv[4], argv[5]);
    if (argc >= 6 && strcmp(argv[1], "threads") == 0)
        return cmd_threads(argv[2], strtoul(argv[3], NULL, 10), strtoull(argv[4], NULL, 10), argv[5]);
    if (argc >= 3 && strcmp(argv[1], "errors") == 0) return cmd_errors(argv[2]);
    if (argc >= 3 && strcmp(argv[1], "handles") == 0) return cmd_handles(argv[2]);
    if (argc >= 4 && strcmp(argv[1], "leak") == 0) return cmd_leak(argv[2], strtol(argv[3], NULL, 10));
    if (argc >= 3 && strcmp(argv[1], "shutdown") == 0) return cmd_shutdown(argv[2]);
    if (argc >= 4 && strcmp(argv[1], "gil") == 0) return cmd_gil(argv[2], argv[3]);
    fprintf(stderr, "usage: genedge_probe raw|latents|threads|errors|leak|shutdown|gil BUNDLE ...\n");
    return 2;
}
