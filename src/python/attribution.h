/* Who made a write, beyond the Python line captured at fault time (location.h): the native
 * function and library that wrote, and the writing thread's Python name. Needs the GIL. */
#ifndef MW_ATTRIBUTION_H
#define MW_ATTRIBUTION_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <sys/types.h>

struct mw_native_writer {
    char symbol[160];      /* "symbol+0xoffset", or "+0xoffset" from the library's start */
    const char *library;   /* its path (dladdr's: valid while it is loaded) */
};

/* Fills *out when the instruction at ip is native code outside the interpreter (a numpy
 * ufunc, memmove through ctypes, a torch kernel) and returns 1; returns 0 for the
 * interpreter's own code (the Python line is the writer then) or an unknown ip. */
int mw_attribution_native_writer(uintptr_t ip, struct mw_native_writer *out);
/* Python's name for the kernel thread id tid, also after the thread ended (a new
 * reference: str, or None for tid 0); NULL with an exception. Remembered until
 * mw_attribution_forget_thread_names(). */
PyObject *mw_attribution_thread_name(pid_t tid);
/* Called at the end of every check: names are looked up once per check and thread. */
void mw_attribution_forget_thread_names(void);

#endif
