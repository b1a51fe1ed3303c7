/* Who wrote: what the fault path learns about a write in the writing thread, shared by
 * the engine's public API (watcher.h) and the stores of the fault path (page_pool.h). */
#ifndef MW_WRITER_H
#define MW_WRITER_H

#include <stdint.h>
#include <sys/types.h>

/* Filled in at fault time by the writer hook (see mw_engine_set_writer_hook) in the
 * faulting thread. Fixed size: no allocation on the fault path. Strings are
 * NUL-terminated and may be truncated. */
#define MW_WRITER_TEXT 160
struct mw_writer {
    pid_t tid;                  /* kernel thread id of the writing thread, 0 if unknown */
    uintptr_t fault_ip;         /* instruction that wrote, 0 if unknown */
    int line;                   /* Python line, 0 if unknown */
    char file[MW_WRITER_TEXT];
    char function[MW_WRITER_TEXT];
};

/* Called in the faulting thread, inside the signal handler: must be async-signal-safe. */
typedef void (*mw_writer_hook)(struct mw_writer *out, void *hook_ctx);

#endif
