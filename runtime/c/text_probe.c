/* text_probe: the C test host of genedge.h's text generation (tests/runtime/test_capi.py).
 *
 *   text_probe gen BUNDLE OUT [--prompt P] [--n N] [--temperature T] [--top-k K] [--top-p P]
 *              [--rep R] [--seed S] [--stop STR]... [--ignore-eos] [--next CAP] [--cancel-after K]
 *
 * Generates from BUNDLE, writes the text to OUT (raw UTF-8) and prints the text info and the
 * stats as key=value lines. --next CAP drives the loop with genedge_generate_next and a
 * CAP-byte buffer (else genedge_generate with a callback); --cancel-after K makes the callback
 * stop after K pieces.
 *
 *   text_probe errors TEXT_BUNDLE IMAGE_BUNDLE
 *
 * Calls that must fail, each printed as "name rc message"; exits 0 if every code was right.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "genedge.h"

typedef struct {
    FILE* out;
    long pieces;
    long cancel_after; /* < 0: never */
    int split_char;    /* a piece that began with a UTF-8 continuation byte */
} sink_t;

static int on_piece(const char* piece, size_t len, void* user) {
    sink_t* s = user;
    if (len && ((unsigned char)piece[0] & 0xC0) == 0x80) s->split_char = 1;
    fwrite(piece, 1, len, s->out);
    return s->cancel_after >= 0 && ++s->pieces >= s->cancel_after;
}

static int fail(const char* what, int rc, genedge_t* h) {
    fprintf(stderr, "%s failed (%d): %s\n", what, rc, genedge_last_error(h));
    return rc;
}

static int cmd_gen(int argc, char** argv) {
    const char *bundle = argv[2], *path = argv[3], *prompt = "";
    genedge_generate_options_t o;
    memset(&o, 0, sizeof o);
    const char* stops[16];
    size_t cap = 0;
    sink_t sink = {NULL, 0, -1, 0};
    for (int i = 4; i < argc; ++i) {
        const char* a = argv[i];
        const char* v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "--ignore-eos")) { o.ignore_eos = 1; continue; }
        ++i;
        if (!strcmp(a, "--prompt")) prompt = v;
        else if (!strcmp(a, "--n")) o.max_new_tokens = atoi(v);
        else if (!strcmp(a, "--temperature")) o.temperature = strtof(v, NULL);
        else if (!strcmp(a, "--top-k")) o.top_k = atoi(v);
        else if (!strcmp(a, "--top-p")) o.top_p = strtof(v, NULL);
        else if (!strcmp(a, "--rep")) o.repetition_penalty = strtof(v, NULL);
        else if (!strcmp(a, "--seed")) o.seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--stop") && o.num_stop < 16) stops[o.num_stop++] = v;
        else if (!strcmp(a, "--next")) cap = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--cancel-after")) sink.cancel_after = atol(v);
        else { fprintf(stderr, "unknown option %s\n", a); return 64; }
    }
    o.stop = o.num_stop ? stops : NULL;
    genedge_t* h = NULL;
    int rc = genedge_open(bundle, NULL, &h);
    if (rc) return fail("genedge_open", rc, NULL);
    genedge_text_info_t info;
    rc = genedge_text_info(h, &info);
    if (rc) return fail("genedge_text_info", rc, h);
    printf("vocab=%d context=%d transformer=%d backend=%s precision=%s\n", info.vocab_size,
           info.max_context, info.is_transformer, info.backend, info.precision);
    sink.out = fopen(path, "wb");
    if (!sink.out) return 66;
    if (cap) {
        char* buf = malloc(cap);
        size_t n = 0;
        rc = genedge_generate_start(h, prompt, &o);
        while (rc == 0 && (rc = genedge_generate_next(h, buf, cap, &n)) == 0) {
            if (strlen(buf) != n) rc = 99; /* NUL-terminated, *len bytes */
            else on_piece(buf, n, &sink);
        }
        if (rc == GENEDGE_END) rc = 0;
        free(buf);
    } else {
        rc = genedge_generate(h, prompt, &o, on_piece, &sink);
    }
    fclose(sink.out);
    if (rc) return fail("generate", rc, h);
    genedge_text_stats_t s;
    rc = genedge_generate_stats(h, &s);
    if (rc) return fail("genedge_generate_stats", rc, h);
    printf("prompt_tokens=%lld tokens=%lld ttft_s=%.9f p50_s=%.9f p99_s=%.9f tokens_per_s=%.3f "
           "elapsed_s=%.9f reason=%s split=%d\n", (long long)s.prompt_tokens, (long long)s.tokens,
           s.ttft_s, s.inter_token_p50_s, s.inter_token_p99_s, s.tokens_per_s, s.elapsed_s,
           s.stop_reason, sink.split_char);
    return genedge_close(h);
}

static int bad = 0;

static void expect(const char* name, int rc, int want, const genedge_t* h) {
    printf("%s %d %s\n", name, rc, genedge_last_error(h));
    if (rc != want) {
        fprintf(stderr, "%s: rc %d, expected %d\n", name, rc, want);
        bad = 1;
    }
}

static int ignore(const char* piece, size_t len, void* user) {
    (void)piece, (void)len, (void)user;
    return 0;
}

static int cmd_errors(const char* text_bundle, const char* image_bundle) {
    genedge_t *t = NULL, *img = NULL;
    if (genedge_open(text_bundle, NULL, &t) || genedge_open(image_bundle, NULL, &img))
        return fail("genedge_open", 1, NULL);
    char buf[64];
    size_t n = 7;
    genedge_text_stats_t s;
    expect("stats_before_any", genedge_generate_stats(t, &s), 0, t);
    if (s.tokens != 0 || !isnan(s.ttft_s)) bad = 1;
    expect("next_before_start", genedge_generate_next(t, buf, sizeof buf, &n), 2, t);
    if (n != 0) bad = 1;
    genedge_output_info_t oi;
    expect("image_call_on_text", genedge_output_info(t, &oi), 2, t);
    genedge_text_info_t ti;
    expect("text_call_on_image", genedge_text_info(img, &ti), 2, img);
    expect("generate_on_image", genedge_generate_start(img, "x", NULL), 2, img);
    expect("null_prompt", genedge_generate_start(t, NULL, NULL), 2, t);
    expect("bad_utf8_prompt", genedge_generate_start(t, "ab\xff", NULL), 2, t);
    genedge_generate_options_t o;
    memset(&o, 0, sizeof o);
    o.max_new_tokens = -1;
    expect("negative_tokens", genedge_generate_start(t, "x", &o), 2, t);
    memset(&o, 0, sizeof o);
    o.temperature = -1.0f;
    expect("negative_temperature", genedge_generate_start(t, "x", &o), 2, t);
    memset(&o, 0, sizeof o);
    o.num_stop = 2;
    expect("null_stop_list", genedge_generate_start(t, "x", &o), 2, t);
    const char* stops[] = {"ok", "\xc3"};
    o.stop = stops;
    expect("bad_utf8_stop", genedge_generate_start(t, "x", &o), 2, t);
    expect("null_callback", genedge_generate(t, "x", NULL, NULL, NULL), 2, t);
    expect("start", genedge_generate_start(t, "x", NULL), 0, t);
    expect("small_buffer", genedge_generate_next(t, buf, 4, &n), 2, t);
    expect("null_buffer", genedge_generate_next(t, NULL, 64, &n), 2, t);
    expect("generate_ok", genedge_generate(t, "x", NULL, ignore, NULL), 0, t);
    expect("close_text", genedge_close(t), 0, NULL);
    expect("next_after_close", genedge_generate_next(t, buf, sizeof buf, &n), 2, NULL);
    expect("close_image", genedge_close(img), 0, NULL);
    return bad;
}

int main(int argc, char** argv) {
    if (argc >= 4 && !strcmp(argv[1], "gen")) return cmd_gen(argc, argv);
    if (argc == 4 && !strcmp(argv[1], "errors")) return cmd_errors(argv[2], argv[3]);
    fprintf(stderr, "usage: text_probe gen BUNDLE OUT [options] | errors TEXT_BUNDLE IMAGE_BUNDLE\n");
    return 64;
}
