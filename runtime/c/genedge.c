/* libgenedge: the C ABI of genedge.h over an embedded CPython running genedge.runtime.
 *
 * The runtime stays in Python (runtime/capi.py is its thin C-facing half); this file only
 * starts the interpreter once, moves plain C values and caller memory across, and turns
 * Python exceptions into exit codes and messages.
 *
 * Locking: a call on a handle takes the handle's mutex first, then the GIL
 * (PyGILState_Ensure), never the other way round, so a thread waiting for a busy handle
 * never holds the GIL. The GIL is released after start-up (PyEval_SaveThread) and between
 * calls; while inference runs, ONNX Runtime releases it inside InferenceSession.run.
 *
 * Caller memory: output buffers, latents and labels reach Python as memoryviews made by
 * PyMemoryView_FromMemory (no copy). Each is released when the call returns; if Python
 * still holds a view of it at that point, the call fails with code 1 rather than leave a
 * dangling reference into the host's memory.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "genedge.h"

#ifndef GENEDGE_DEFAULT_PYTHON
#define GENEDGE_DEFAULT_PYTHON "" /* the build's python (CMake sets it) */
#endif

#define MSG_CAP 4096
#define CAPI_MODULE "genedge.runtime.capi"

struct genedge {
    pthread_mutex_t mu; /* serialises calls on this handle; taken before the GIL */
    long id;            /* key of the handle in runtime/capi.py */
    uintptr_t token;    /* what the host holds as its genedge_t* (see "handles" below) */
    long refs;          /* 1 while open, plus one per call in flight; under g_mu */
    char error[MSG_CAP];
};

static __thread char t_error[MSG_CAP];

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER; /* handle table, g_finalized */
static int g_init_rc;
static char g_init_error[MSG_CAP];
static int g_owns_interpreter;
static int g_finalized;
static pthread_t g_init_thread;
static PyThreadState* g_init_tstate;
static PyObject* g_capi; /* the genedge.runtime.capi module */

/* ---------------------------------------------------------------- errors */

static int vset_error(genedge_t* h, int code, const char* fmt, va_list ap) {
    vsnprintf(t_error, sizeof t_error, fmt, ap);
    if (h) memcpy(h->error, t_error, sizeof h->error);
    return code;
}

static int set_error(genedge_t* h, int code, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vset_error(h, code, fmt, ap);
    va_end(ap);
    return code;
}

static const char* utf8_or(PyObject* s, const char* fallback) {
    const char* c = s && PyUnicode_Check(s) ? PyUnicode_AsUTF8(s) : NULL;
    if (!c) PyErr_Clear();
    return c ? c : fallback;
}

/* The pending Python exception -> (code, message) via capi.describe_error. GIL held. */
static int python_error(genedge_t* h, int fallback_code, const char* context) {
    if (!PyErr_Occurred()) return set_error(h, 1, "%s failed without a Python exception (a bug).", context);
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb && value) PyException_SetTraceback(value, tb);
    int code = fallback_code;
    const char* message = NULL;
    PyObject* described = g_capi ? PyObject_CallMethod(g_capi, "describe_error", "Os", value, context) : NULL;
    if (described && PyArg_ParseTuple(described, "is", &code, &message)) {
        set_error(h, code, "%s", message);
    } else {
        PyErr_Clear();
        PyObject* text = value ? PyObject_Str(value) : NULL;
        const char* name = type ? ((PyTypeObject*)type)->tp_name : "exception";
        set_error(h, code, "%s: %s: %s", context, name, utf8_or(text, "(no message)"));
        Py_XDECREF(text);
    }
    Py_XDECREF(described);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return code;
}

/* ------------------------------------------------------- interpreter start */

/* Extension modules (numpy, onnxruntime) resolve Python's C API from the global symbol
 * scope. A host that dlopen()s libgenedge with RTLD_LOCAL would hide libpython from them,
 * so promote the already-loaded libpython to RTLD_GLOBAL. */
static void promote_libpython(void) {
    Dl_info info;
    if (dladdr((void*)&Py_InitializeFromConfig, &info) && info.dli_fname)
        (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
}

/* The interpreter whose site-packages hold genedge: $GENEDGE_PYTHON, else
 * $VIRTUAL_ENV/bin/python, else the python the library was built with. Naming a venv's
 * bin/python as program_name makes CPython read its pyvenv.cfg, as if that python ran. */
static const char* python_program(char* buf, size_t cap) {
    const char* p = getenv("GENEDGE_PYTHON");
    if (p && *p) return p;
    const char* venv = getenv("VIRTUAL_ENV");
    if (venv && *venv) {
        snprintf(buf, cap, "%s/bin/python", venv);
        return buf;
    }
    return GENEDGE_DEFAULT_PYTHON;
}

static int import_capi(void) {
    g_capi = PyImport_ImportModule(CAPI_MODULE);
    if (!g_capi) {
        PyObject* exe = PySys_GetObject("executable"); /* borrowed */
        char where[512];
        snprintf(where, sizeof where, "%s", utf8_or(exe, "?"));
        python_error(NULL, 3, "import " CAPI_MODULE);
        snprintf(g_init_error, sizeof g_init_error,
                 "Cannot import " CAPI_MODULE " with the embedded Python (%s): %s. Set "
                 "GENEDGE_PYTHON to the python of the venv where genedge[cpu] is installed.",
                 where, t_error);
        return 3;
    }
    PyObject* r = PyObject_CallMethod(g_capi, "check_abi", "i", GENEDGE_ABI_VERSION);
    if (!r) {
        int code = python_error(NULL, 3, "check_abi");
        snprintf(g_init_error, sizeof g_init_error, "%s", t_error);
        Py_CLEAR(g_capi);
        return code;
    }
    Py_DECREF(r);
    return 0;
}

static void init_once(void) {
    g_init_thread = pthread_self();
    if (Py_IsInitialized()) { /* the host is itself a Python process: use its interpreter */
        PyGILState_STATE st = PyGILState_Ensure();
        g_init_rc = import_capi();
        PyGILState_Release(st);
        return;
    }
    promote_libpython();
    char buf[4096];
    const char* program = python_program(buf, sizeof buf);
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    config.install_signal_handlers = 0; /* the host owns SIGINT & co. */
    config.parse_argv = 0;
    PyStatus status = PyStatus_Ok();
    if (*program) status = PyConfig_SetBytesString(&config, &config.program_name, program);
    if (!PyStatus_Exception(status)) status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status)) {
        g_init_rc = 3;
        snprintf(g_init_error, sizeof g_init_error,
                 "Cannot start the embedded Python (program '%s'): %s%s%s. Set GENEDGE_PYTHON to "
                 "the python of the venv where genedge is installed.",
                 program, status.func ? status.func : "", status.func ? ": " : "",
                 status.err_msg ? status.err_msg : "unknown error");
        return;
    }
    g_owns_interpreter = 1;
    g_init_rc = import_capi();
    g_init_tstate = PyEval_SaveThread(); /* every later call takes the GIL itself */
}

static int ensure_started(void) {
    pthread_once(&g_once, init_once);
    if (g_init_rc) return set_error(NULL, g_init_rc, "%s", g_init_error);
    pthread_mutex_lock(&g_mu);
    int finalized = g_finalized;
    pthread_mutex_unlock(&g_mu);
    if (finalized)
        return set_error(NULL, 3, "genedge_shutdown() was called; the embedded Python cannot "
                                  "be restarted in this process.");
    return 0;
}

/* ---------------------------------------------------------------- handles
 *
 * The genedge_t* a host holds is never dereferenced: it is an opaque token, never reused,
 * that g_handles maps to the live struct. A closed, forged or stale handle is therefore
 * reported (GENEDGE_ERR_BAD_INPUT) instead of touching freed memory. A call in flight
 * holds a reference, so genedge_close frees the struct only after the last call leaves. */

static struct genedge** g_handles; /* open handles, unordered; under g_mu */
static size_t g_handle_count, g_handle_cap;
static uintptr_t g_next_token = 1;

static int table_add(struct genedge* p) { /* g_mu held */
    if (g_handle_count == g_handle_cap) {
        size_t cap = g_handle_cap ? 2 * g_handle_cap : 16;
        struct genedge** t = realloc(g_handles, cap * sizeof *t);
        if (!t) return 1;
        g_handles = t;
        g_handle_cap = cap;
    }
    p->token = (g_next_token++) << 4 | 0x8; /* non-NULL, never a valid heap address */
    g_handles[g_handle_count++] = p;
    return 0;
}

static size_t table_find(const genedge_t* h) { /* g_mu held; g_handle_count when absent */
    size_t i = 0;
    while (i < g_handle_count && g_handles[i]->token != (uintptr_t)h) ++i;
    return i;
}

static int unknown_handle(const char* fn, const genedge_t* h) {
    return set_error(NULL, 2, "%s: handle %p is closed or was never opened; pass a handle that "
                              "genedge_open returned and genedge_close has not closed.", fn,
                     (const void*)h);
}

/* The live struct of token H with a reference taken, or NULL (the message is set). */
static struct genedge* acquire(const genedge_t* h, const char* fn) {
    if (!h) {
        set_error(NULL, 2, "%s: the handle is NULL; pass the handle genedge_open returned.", fn);
        return NULL;
    }
    pthread_mutex_lock(&g_mu);
    size_t i = table_find(h);
    struct genedge* p = i < g_handle_count ? g_handles[i] : NULL;
    if (p) p->refs++;
    pthread_mutex_unlock(&g_mu);
    if (!p) unknown_handle(fn, h);
    return p;
}

static void release_ref(struct genedge* p) {
    pthread_mutex_lock(&g_mu);
    long refs = --p->refs;
    pthread_mutex_unlock(&g_mu);
    if (refs == 0) {
        pthread_mutex_destroy(&p->mu);
        free(p);
    }
}

/* ------------------------------------------------------------ call frames */

/* Swap the token *H for its live struct and lock it; non-zero (message set) if unknown. */
static int enter(genedge_t** h, const char* fn) {
    struct genedge* p = acquire(*h, fn);
    if (!p) return 2;
    pthread_mutex_lock(&p->mu);
    *h = p;
    return 0;
}

static void leave(genedge_t* h) {
    pthread_mutex_unlock(&h->mu);
    release_ref(h);
}

static PyObject* view_of(const void* p, size_t size, int writable) {
    if (!p) Py_RETURN_NONE;
    return PyMemoryView_FromMemory((char*)p, (Py_ssize_t)size, writable ? PyBUF_WRITE : PyBUF_READ);
}

/* Release a memoryview over caller memory; 0 if nothing in Python still uses it. */
static int release_view(PyObject* mv) {
    if (!mv || mv == Py_None) {
        Py_XDECREF(mv);
        return 0;
    }
    PyObject* r = PyObject_CallMethod(mv, "release", NULL);
    int bad = r == NULL;
    if (bad) PyErr_Clear();
    Py_XDECREF(r);
    Py_DECREF(mv);
    return bad;
}

static int check_size(genedge_t* h, const char* fn, size_t n, size_t item) {
    if (item && n > (size_t)PY_SSIZE_T_MAX / item)
        return set_error(h, 2, "%s: n=%zu is too large.", fn, n);
    return 0;
}

/* ------------------------------------------------------------------ API */

int genedge_abi_version(void) { return GENEDGE_ABI_VERSION; }

void genedge_options_init(genedge_options_t* o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->backend = "auto";
}

int genedge_open(const char* bundle, const genedge_options_t* options, genedge_t** out) {
    if (!out) return set_error(NULL, 2, "genedge_open: out is NULL; pass the address of a genedge_t*.");
    *out = NULL;
    if (!bundle || !*bundle)
        return set_error(NULL, 2, "genedge_open: the bundle path is empty; pass the folder "
                                  "written by `genedge export`.");
    int rc = ensure_started();
    if (rc) return rc;
    genedge_options_t o;
    genedge_options_init(&o);
    if (options) o = *options;

    PyGILState_STATE st = PyGILState_Ensure();
    PyObject* path = PyUnicode_DecodeFSDefault(bundle);
    PyObject* r = path ? PyObject_CallMethod(g_capi, "open_bundle", "Ozzii", path, o.backend,
                                             o.precision, (int)o.threads, (int)(o.skip_input_checks == 0))
                       : NULL;
    long id = r ? PyLong_AsLong(r) : -1;
    if (id < 0) rc = python_error(NULL, 1, "genedge_open");
    Py_XDECREF(r);
    Py_XDECREF(path);
    PyGILState_Release(st);
    if (rc) return rc;

    genedge_t* h = calloc(1, sizeof *h);
    if (!h) { /* give the Python side its handle back */
        st = PyGILState_Ensure();
        PyObject* c = PyObject_CallMethod(g_capi, "close", "l", id);
        if (!c) PyErr_Clear();
        Py_XDECREF(c);
        PyGILState_Release(st);
        return set_error(NULL, 1, "genedge_open: out of memory.");
    }
    pthread_mutex_init(&h->mu, NULL);
    h->id = id;
    h->refs = 1;
    pthread_mutex_lock(&g_mu);
    int full = table_add(h);
    pthread_mutex_unlock(&g_mu);
    if (full) {
        st = PyGILState_Ensure();
        PyObject* c = PyObject_CallMethod(g_capi, "close", "l", id);
        if (!c) PyErr_Clear();
        Py_XDECREF(c);
        PyGILState_Release(st);
        pthread_mutex_destroy(&h->mu);
        free(h);
        return set_error(NULL, 1, "genedge_open: out of memory.");
    }
    *out = (genedge_t*)h->token;
    return 0;
}

int genedge_output_info(genedge_t* h, genedge_output_info_t* info) {
    int rc = enter(&h, "genedge_output_info");
    if (rc) return rc;
    if (!info) {
        rc = set_error(h, 2, "genedge_output_info: info is NULL.");
        leave(h);
        return rc;
    }
    memset(info, 0, sizeof *info);
    PyGILState_STATE st = PyGILState_Ensure();
    PyObject* r = PyObject_CallMethod(g_capi, "output_info", "l", h->id);
    Py_ssize_t bps = 0;
    const char *backend = "", *precision = "";
    if (!r || !PyArg_ParseTuple(r, "iiiiiiinss", &info->height, &info->width, &info->channels,
                                &info->dtype, &info->layout, &info->num_classes,
                                &info->latent_dim, &bps, &backend, &precision)) {
        rc = python_error(h, 1, "genedge_output_info");
    } else {
        info->bytes_per_sample = (size_t)bps;
        snprintf(info->backend, sizeof info->backend, "%s", backend);
        snprintf(info->precision, sizeof info->precision, "%s", precision);
    }
    Py_XDECREF(r);
    PyGILState_Release(st);
    leave(h);
    return rc;
}

static int sample_impl(genedge_t* h, const char* fn, size_t n, uint64_t seed, double truncation,
                       const float* z, size_t z_count, const int64_t* labels, void* out,
                       size_t out_size) {
    int rc = enter(&h, fn);
    if (rc) return rc;
    if (!out && out_size)
        rc = set_error(h, 2, "%s: out is NULL but out_size is %zu.", fn, out_size);
    else if (z == NULL && z_count)
        rc = set_error(h, 2, "%s: z is NULL but z_count is %zu.", fn, z_count);
    if (!rc) rc = check_size(h, fn, n, sizeof(int64_t));
    if (!rc) rc = check_size(h, fn, z_count, sizeof(float));
    if (!rc && out_size > (size_t)PY_SSIZE_T_MAX) rc = set_error(h, 2, "%s: out_size is too large.", fn);
    if (rc) {
        leave(h);
        return rc;
    }
    PyGILState_STATE st = PyGILState_Ensure();
    PyObject* out_mv = view_of(out ? out : (void*)"", out_size, 1);
    PyObject* labels_mv = view_of(labels, n * sizeof(int64_t), 0);
    PyObject* z_mv = z ? view_of(z, z_count * sizeof(float), 0) : NULL;
    PyObject* r = NULL;
    if (out_mv && labels_mv && (z_mv || !z)) {
        if (z)
            r = PyObject_CallMethod(g_capi, "sample_latents", "lnOOO", h->id, (Py_ssize_t)n, z_mv,
                                    labels_mv, out_mv);
        else
            r = PyObject_CallMethod(g_capi, "sample", "lnKdOO", h->id, (Py_ssize_t)n,
                                    (unsigned long long)seed, truncation, labels_mv, out_mv);
    }
    if (!r) rc = python_error(h, 1, fn);
    Py_XDECREF(r);
    int kept = release_view(out_mv) | release_view(labels_mv) | (z_mv ? release_view(z_mv) : 0);
    if (kept && !rc)
        rc = set_error(h, 1, "%s: the runtime kept a reference to a caller buffer after the "
                             "call (a bug in genedge.runtime; please report it).", fn);
    PyGILState_Release(st);
    leave(h);
    return rc;
}

int genedge_sample(genedge_t* h, size_t n, uint64_t seed, const int64_t* labels, void* out,
                   size_t out_size) {
    return sample_impl(h, "genedge_sample", n, seed, 1.0, NULL, 0, labels, out, out_size);
}

int genedge_sample_truncated(genedge_t* h, size_t n, uint64_t seed, float truncation,
                             const int64_t* labels, void* out, size_t out_size) {
    return sample_impl(h, "genedge_sample_truncated", n, seed, (double)truncation, NULL, 0,
                       labels, out, out_size);
}

int genedge_sample_latents(genedge_t* h, size_t n, const float* z, size_t z_count,
                           const int64_t* labels, void* out, size_t out_size) {
    if (h && !z) {
        int rc = enter(&h, "genedge_sample_latents");
        if (rc) return rc;
        rc = set_error(h, 2, "genedge_sample_latents: z is NULL; pass n * latent_dim floats.");
        leave(h);
        return rc;
    }
    return sample_impl(h, "genedge_sample_latents", n, 0, 1.0, z, z_count, labels, out, out_size);
}

int genedge_stream_start(genedge_t* h, double fps, double seconds,
                         const genedge_stream_options_t* options) {
    int rc = enter(&h, "genedge_stream_start");
    if (rc) return rc;
    genedge_stream_options_t o;
    memset(&o, 0, sizeof o);
    if (options) o = *options;
    if (o.labels == NULL && o.num_labels) {
        rc = set_error(h, 2, "genedge_stream_start: labels is NULL but num_labels is %zu.", o.num_labels);
        leave(h);
        return rc;
    }
    if (!rc) rc = check_size(h, "genedge_stream_start", o.num_labels, sizeof(int64_t));
    if (rc) {
        leave(h);
        return rc;
    }
    PyGILState_STATE st = PyGILState_Ensure();
    /* The runtime keeps the labels, so they are copied (bytes), not viewed. */
    PyObject* labels = o.labels ? PyBytes_FromStringAndSize((const char*)o.labels,
                                                            (Py_ssize_t)(o.num_labels * sizeof(int64_t)))
                                : (Py_INCREF(Py_None), Py_None);
    PyObject* r = labels ? PyObject_CallMethod(g_capi, "stream_start", "lddzzidKO", h->id, fps,
                                               seconds, o.walk, o.late, (int)o.batch,
                                               (double)o.truncation, (unsigned long long)o.seed, labels)
                         : NULL;
    if (!r) rc = python_error(h, 1, "genedge_stream_start");
    Py_XDECREF(r);
    Py_XDECREF(labels);
    PyGILState_Release(st);
    leave(h);
    return rc;
}

int genedge_stream_next(genedge_t* h, void* out, size_t out_size, genedge_frame_info_t* info) {
    int rc = enter(&h, "genedge_stream_next");
    if (rc) return rc;
    if (!out) {
        rc = set_error(h, 2, "genedge_stream_next: out is NULL; pass a buffer of bytes_per_sample bytes.");
        leave(h);
        return rc;
    }
    PyGILState_STATE st = PyGILState_Ensure();
    PyObject* out_mv = view_of(out, out_size, 1);
    PyObject* r = out_mv ? PyObject_CallMethod(g_capi, "stream_next", "lO", h->id, out_mv) : NULL;
    genedge_frame_info_t f = {0, NAN, NAN, NAN, NAN};
    long long index = 0;
    if (!r) {
        rc = python_error(h, 1, "genedge_stream_next");
    } else if (r == Py_None) {
        rc = GENEDGE_END;
    } else if (!PyArg_ParseTuple(r, "Ldddd", &index, &f.t_due, &f.t_ready, &f.t_delivered,
                                       &f.latency_s)) {
        rc = python_error(h, 1, "genedge_stream_next");
    }
    f.index = (int64_t)index;
    Py_XDECREF(r);
    if (release_view(out_mv) && rc >= 0)
        rc = set_error(h, 1, "genedge_stream_next: the runtime kept a reference to the caller "
                             "buffer (a bug in genedge.runtime; please report it).");
    PyGILState_Release(st);
    if (info && rc == 0) *info = f;
    leave(h);
    return rc;
}

int genedge_stream_stop(genedge_t* h) {
    int rc = enter(&h, "genedge_stream_stop");
    if (rc) return rc;
    PyGILState_STATE st = PyGILState_Ensure();
    PyObject* r = PyObject_CallMethod(g_capi, "stream_stop", "l", h->id);
    if (!r) rc = python_error(h, 1, "genedge_stream_stop");
    Py_XDECREF(r);
    PyGILState_Release(st);
    leave(h);
    return rc;
}

int genedge_stream_stats(genedge_t* h, genedge_stream_stats_t* s) {
    int rc = enter(&h, "genedge_stream_stats");
    if (rc) return rc;
    if (!s) {
        rc = set_error(h, 2, "genedge_stream_stats: stats is NULL.");
        leave(h);
        return rc;
    }
    memset(s, 0, sizeof *s);
    PyGILState_STATE st = PyGILState_Ensure();
    PyObject* r = PyObject_CallMethod(g_capi, "stream_stats", "l", h->id);
    long long counts[5] = {0};
    if (!r || !PyArg_ParseTuple(r, "LLLLLddddddddd", &counts[0], &counts[1], &counts[2], &counts[3],
                                &counts[4], &s->elapsed_s, &s->fps_target, &s->fps_achieved,
                                &s->jitter_p50_s, &s->jitter_p99_s, &s->jitter_max_s,
                                &s->latency_p50_s, &s->latency_p99_s, &s->latency_max_s))
        rc = python_error(h, 1, "genedge_stream_stats");
    s->frames = counts[0];
    s->missed_deadlines = counts[1];
    s->dropped = counts[2];
    s->late_delivered = counts[3];
    s->nonfinite = counts[4];
    Py_XDECREF(r);
    PyGILState_Release(st);
    leave(h);
    return rc;
}

const char* genedge_last_error(const genedge_t* h) {
    if (!h) return t_error;
    struct genedge* m = acquire(h, "genedge_last_error");
    if (!m) return t_error; /* says that the handle is closed or unknown */
    pthread_mutex_lock(&m->mu);
    memcpy(t_error, m->error, sizeof t_error);
    pthread_mutex_unlock(&m->mu);
    release_ref(m);
    return t_error;
}

int genedge_close(genedge_t* h) {
    if (!h) return 0;
    pthread_mutex_lock(&g_mu); /* unlisted first: later calls with H are refused */
    size_t i = table_find(h);
    struct genedge* p = i < g_handle_count ? g_handles[i] : NULL;
    if (p) g_handles[i] = g_handles[--g_handle_count];
    pthread_mutex_unlock(&g_mu);
    if (!p) return unknown_handle("genedge_close", h);
    pthread_mutex_lock(&p->mu); /* waits for calls in flight on this handle */
    int rc = 0;
    PyGILState_STATE st = PyGILState_Ensure();
    PyObject* r = PyObject_CallMethod(g_capi, "close", "l", p->id);
    if (!r) rc = python_error(NULL, 1, "genedge_close");
    Py_XDECREF(r);
    PyGILState_Release(st);
    pthread_mutex_unlock(&p->mu);
    release_ref(p);
    return rc;
}

int genedge_shutdown(void) {
    pthread_mutex_lock(&g_mu);
    if (g_finalized) {
        pthread_mutex_unlock(&g_mu);
        return 0;
    }
    if (g_handle_count) {
        size_t n = g_handle_count;
        pthread_mutex_unlock(&g_mu);
        return set_error(NULL, 2, "genedge_shutdown: %zu handle(s) still open; genedge_close them first.", n);
    }
    /* Py_FinalizeEx waits for the thread that started the interpreter to finish: from any
     * other thread it would wait forever, so that call is refused and nothing changes */
    if (g_owns_interpreter && !pthread_equal(pthread_self(), g_init_thread)) {
        pthread_mutex_unlock(&g_mu);
        return set_error(NULL, 2, "genedge_shutdown: called from a thread other than the one that "
                                  "made the first genedge call; call it from that thread.");
    }
    g_finalized = 1;
    pthread_mutex_unlock(&g_mu);
    if (!g_capi && !g_owns_interpreter) return 0; /* never started, or the host owns Python */
    if (!g_owns_interpreter) {
        PyGILState_STATE st = PyGILState_Ensure();
        Py_CLEAR(g_capi);
        PyGILState_Release(st);
        return 0;
    }
    PyEval_RestoreThread(g_init_tstate);
    Py_CLEAR(g_capi);
    if (Py_FinalizeEx() < 0) return set_error(NULL, 1, "genedge_shutdown: Py_FinalizeEx failed.");
    return 0;
}

/* ------------------------------------------------------- text generation (ar bundles) */

int genedge_text_info(genedge_t* h, genedge_text_info_t* info) {
    int rc = enter(&h, "genedge_text_info");
    if (rc) return rc;
    if (!info) {
        rc = set_error(h, 2, "genedge_text_info: info is NULL.");
        leave(h);
        return rc;
    }
    memset(info, 0, sizeof *info);
    PyGILState_STATE st = PyGILState_Ensure();
    PyObject* r = PyObject_CallMethod(g_capi, "text_info", "l", h->id);
    const char *backend = "", *precision = "";
    if (!r || !PyArg_ParseTuple(r, "iiiss", &info->vocab_size, &info->max_context,
                                &info->is_transformer, &backend, &precision)) {
        rc = python_error(h, 1, "genedge_text_info");
    } else {
        snprintf(info->backend, sizeof info->backend, "%s", backend);
        snprintf(info->precision, sizeof info->precision, "%s", precision);
    }
    Py_XDECREF(r);
    PyGILState_Release(st);
    leave(h);
    return rc;
}

#define MAX_STOP_STRINGS 1024 /* the runtime refuses more than a few; this bounds the copy */

/* A new Python str from UTF-8 text, or NULL with the message set (GIL held). */
static PyObject* utf8_arg(genedge_t* h, const char* fn, const char* what, const char* text) {
    PyObject* s = PyUnicode_DecodeUTF8(text, (Py_ssize_t)strlen(text), "strict");
    if (!s) {
        PyErr_Clear();
        set_error(h, 2, "%s: %s is not valid UTF-8; pass UTF-8 text.", fn, what);
    }
    return s;
}

/* The stop strings as a Python list, or NULL with the message set (GIL held). */
static PyObject* stop_list(genedge_t* h, const genedge_generate_options_t* o) {
    PyObject* list = PyList_New(0);
    for (size_t i = 0; list && i < o->num_stop; ++i) {
        char what[48];
        snprintf(what, sizeof what, "stop[%zu]", i);
        if (!o->stop[i]) {
            set_error(h, 2, "genedge_generate_start: %s is NULL; pass num_stop strings.", what);
            Py_CLEAR(list);
            break;
        }
        PyObject* s = utf8_arg(h, "genedge_generate_start", what, o->stop[i]);
        if (!s || PyList_Append(list, s) < 0) Py_CLEAR(list);
        Py_XDECREF(s);
    }
    return list;
}

int genedge_generate_start(genedge_t* h, const char* prompt, const genedge_generate_options_t* options) {
    int rc = enter(&h, "genedge_generate_start");
    if (rc) return rc;
    genedge_generate_options_t o;
    memset(&o, 0, sizeof o);
    if (options) o = *options;
    if (!prompt)
        rc = set_error(h, 2, "genedge_generate_start: prompt is NULL; pass \"\" for no prompt.");
    else if (!o.stop && o.num_stop)
        rc = set_error(h, 2, "genedge_generate_start: stop is NULL but num_stop is %zu.", o.num_stop);
    else if (o.num_stop > MAX_STOP_STRINGS)
        rc = set_error(h, 2, "genedge_generate_start: num_stop is %zu; expected at most %d.",
                       o.num_stop, MAX_STOP_STRINGS);
    if (rc) {
        leave(h);
        return rc;
    }
    PyGILState_STATE st = PyGILState_Ensure();
    PyObject* text = utf8_arg(h, "genedge_generate_start", "the prompt", prompt);
    PyObject* stop = text ? stop_list(h, &o) : NULL;
    if (!text || !stop) {
        rc = 2; /* the message is set */
    } else {
        PyObject* r = PyObject_CallMethod(g_capi, "generate_start", "lOididdKOi", h->id, text,
                                          (int)o.max_new_tokens, (double)o.temperature,
                                          (int)o.top_k, (double)o.top_p,
                                          (double)o.repetition_penalty,
                                          (unsigned long long)o.seed, stop, (int)(o.ignore_eos == 0));
        if (!r) rc = python_error(h, 1, "genedge_generate_start");
        Py_XDECREF(r);
    }
    Py_XDECREF(stop);
    Py_XDECREF(text);
    PyGILState_Release(st);
    leave(h);
    return rc;
}

int genedge_generate_next(genedge_t* h, char* buf, size_t cap, size_t* len) {
    if (len) *len = 0;
    int rc = enter(&h, "genedge_generate_next");
    if (rc) return rc;
    if (!buf)
        rc = set_error(h, 2, "genedge_generate_next: buf is NULL; pass a buffer of 64 bytes or more.");
    else if (cap < 5)
        rc = set_error(h, 2, "genedge_generate_next: cap is %zu; expected at least 5 (one UTF-8 "
                             "character and the terminating NUL).", cap);
    if (rc) {
        leave(h);
        return rc;
    }
    buf[0] = '\0';
    size_t room = cap - 1 < (size_t)PY_SSIZE_T_MAX ? cap - 1 : (size_t)PY_SSIZE_T_MAX;
    PyGILState_STATE st = PyGILState_Ensure();
    PyObject* r = PyObject_CallMethod(g_capi, "generate_next", "ln", h->id, (Py_ssize_t)room);
    char* data = NULL;
    Py_ssize_t n = 0;
    if (!r) {
        rc = python_error(h, 1, "genedge_generate_next");
    } else if (r == Py_None) {
        rc = GENEDGE_END;
    } else if (PyBytes_AsStringAndSize(r, &data, &n) < 0 || (size_t)n > room) {
        rc = PyErr_Occurred() ? python_error(h, 1, "genedge_generate_next")
                              : set_error(h, 1, "genedge_generate_next: a piece longer than the "
                                                "buffer (a bug; please report it).");
    } else {
        memcpy(buf, data, (size_t)n);
        buf[n] = '\0';
        if (len) *len = (size_t)n;
    }
    Py_XDECREF(r);
    PyGILState_Release(st);
    leave(h);
    return rc;
}

static int generate_cancel(genedge_t* h) {
    int rc = enter(&h, "genedge_generate");
    if (rc) return rc;
    PyGILState_STATE st = PyGILState_Ensure();
    PyObject* r = PyObject_CallMethod(g_capi, "generate_cancel", "l", h->id);
    if (!r) rc = python_error(h, 1, "genedge_generate");
    Py_XDECREF(r);
    PyGILState_Release(st);
    leave(h);
    return rc;
}

int genedge_generate(genedge_t* h, const char* prompt, const genedge_generate_options_t* options,
                     genedge_piece_fn on_piece, void* user) {
    if (!on_piece) {
        int rc = enter(&h, "genedge_generate");
        if (rc) return rc;
        rc = set_error(h, 2, "genedge_generate: on_piece is NULL; pass a callback, or drive the "
                             "loop with genedge_generate_start and genedge_generate_next.");
        leave(h);
        return rc;
    }
    int rc = genedge_generate_start(h, prompt, options);
    char piece[256];
    size_t n = 0;
    while (rc == 0) {
        rc = genedge_generate_next(h, piece, sizeof piece, &n);
        if (rc == 0 && on_piece(piece, n, user)) return generate_cancel(h);
    }
    return rc == GENEDGE_END ? 0 : rc;
}

int genedge_generate_stats(genedge_t* h, genedge_text_stats_t* s) {
    int rc = enter(&h, "genedge_generate_stats");
    if (rc) return rc;
    if (!s) {
        rc = set_error(h, 2, "genedge_generate_stats: stats is NULL.");
        leave(h);
        return rc;
    }
    memset(s, 0, sizeof *s);
    PyGILState_STATE st = PyGILState_Ensure();
    PyObject* r = PyObject_CallMethod(g_capi, "generate_stats", "l", h->id);
    long long counts[2] = {0, 0};
    const char* reason = "";
    if (!r || !PyArg_ParseTuple(r, "LLddddds", &counts[0], &counts[1], &s->ttft_s,
                                &s->inter_token_p50_s, &s->inter_token_p99_s, &s->tokens_per_s,
                                &s->elapsed_s, &reason))
        rc = python_error(h, 1, "genedge_generate_stats");
    s->prompt_tokens = counts[0];
    s->tokens = counts[1];
    snprintf(s->stop_reason, sizeof s->stop_reason, "%s", reason);
    Py_XDECREF(r);
    PyGILState_Release(st);
    leave(h);
    return rc;
}
