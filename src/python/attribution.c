/* Writer attribution that needs more than the fault handler may do: dladdr() for native
 * writers, Python code for thread names. Both run while a check routes its changes, with
 * the GIL held, so both are cached: a check usually sees the same few writers many times.
 *
 * DESIGN: thread names are kept for one check only (mw_attribution_forget_thread_names at
 * its end), so a renamed thread or a reused kernel thread id is named as it is at that
 * check. Native writers are kept by instruction address in a small ring for the rest of
 * the run: the answer for an address changes only if its library is unloaded, and the
 * library path dladdr() gave stays valid only as long as the library is loaded (Python
 * never unloads extension modules; ctypes unloads only on an explicit _ctypes.dlclose). */
#include "attribution.h"

#include <dlfcn.h>
#include <link.h>
#include <stdio.h>

/* ---- native writers ---------------------------------------------------------------- */

/* The interpreter's own code: writes from there (bytearray item assignment, ...) are the
 * Python line's, and dladdr() is too slow to ask for every change. */
static uintptr_t interpreter_lo, interpreter_hi;

static int find_interpreter(struct dl_phdr_info *info, size_t size, void *ctx)
{
    (void)size;
    uintptr_t probe = (uintptr_t)ctx, lo = UINTPTR_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t a = info->dlpi_addr + ph->p_vaddr, b = a + ph->p_memsz;
        if (a < lo)
            lo = a;
        if (b > hi)
            hi = b;
    }
    if (probe >= lo && probe < hi) {
        interpreter_lo = lo;
        interpreter_hi = hi;
        return 1;
    }
    return 0;
}

#define NATIVE_CACHE 8
static struct {
    uintptr_t ip;
    struct mw_native_writer writer;
    int found;
} native_cache[NATIVE_CACHE];
static unsigned native_cache_next;

int mw_attribution_native_writer(uintptr_t ip, struct mw_native_writer *out)
{
    if (!ip)
        return 0;
    if (!interpreter_hi)
        dl_iterate_phdr(find_interpreter, (void *)(uintptr_t)&PyObject_GetBuffer);
    if (ip >= interpreter_lo && ip < interpreter_hi)
        return 0;
    for (unsigned i = 0; i < NATIVE_CACHE; i++)
        if (native_cache[i].ip == ip) {
            *out = native_cache[i].writer;
            return native_cache[i].found;
        }
    Dl_info info;
    int found = dladdr((void *)ip, &info) && info.dli_fname;
    if (found) {
        /* Libraries export few of their internal functions: without a symbol, the offset
         * from the library's start still finds the code with its debug symbols. */
        if (info.dli_sname && info.dli_saddr)
            snprintf(out->symbol, sizeof out->symbol, "%s+0x%lx", info.dli_sname,
                     (unsigned long)(ip - (uintptr_t)info.dli_saddr));
        else
            snprintf(out->symbol, sizeof out->symbol, "+0x%lx",
                     (unsigned long)(ip - (uintptr_t)info.dli_fbase));
        out->library = info.dli_fname;
    }
    unsigned slot = native_cache_next++ % NATIVE_CACHE;
    native_cache[slot].ip = ip;
    native_cache[slot].found = found;
    if (found)
        native_cache[slot].writer = *out;
    return found;
}

/* ---- thread names ------------------------------------------------------------------ */

/* Threads that ended are remembered by the helper in module.c (names of finished threads),
 * so a write made just before a thread ends is still attributed to its name. Protected by
 * the GIL. */
#define NAME_CACHE 16
static struct {
    pid_t tid;
    PyObject *name;
} thread_names[NAME_CACHE];
static int thread_names_used;

void mw_attribution_forget_thread_names(void)
{
    for (int i = 0; i < thread_names_used; i++)
        Py_CLEAR(thread_names[i].name);
    thread_names_used = 0;
}

PyObject *mw_attribution_thread_name(pid_t tid)
{
    for (int i = 0; i < thread_names_used; i++)
        if (thread_names[i].tid == tid)
            return Py_NewRef(thread_names[i].name);
    PyObject *module = PyImport_ImportModule("memwatch");
    if (!module)
        return NULL;
    PyObject *name = PyObject_CallMethod(module, "_thread_name", "i", (int)tid);
    Py_DECREF(module);
    if (name && thread_names_used < NAME_CACHE) {
        thread_names[thread_names_used].tid = tid;
        thread_names[thread_names_used].name = Py_NewRef(name);
        thread_names_used++;
    }
    return name;
}
