/* memwatch trace's side of the record streams: a listening Unix socket, one connection per
 * traced process (and one more each time a process reconnects), each with its own parser,
 * all applied to one trace writer. */
#ifndef MW_TRACE_SERVE_H
#define MW_TRACE_SERVE_H

#include <stdint.h>
#include <sys/types.h>

#include "writer.h"

typedef struct mw_serve mw_serve;

/* Listens on a new socket in the abstract namespace, under a name with a random part;
 * *out, and the name (for MW_ENV_TRACE_SOCKET) in name. 0 or a negative errno. */
int mw_serve_listen(mw_serve **out, char *name, size_t name_size);
/* Applies what every connection sends to w, until the root process has exited (reaped
 * here: *root_status is its wait status) and every connection has closed; then records
 * each process's end, what could not be delivered, and closes the socket. follow: 0 when
 * children are not traced (meta follow). 0, or the writer's error status (the root is
 * still waited for). */
int mw_serve_run(mw_serve *s, mw_trace_writer *w, pid_t root, int follow, int *root_status);
/* Changes the traced processes said they could not deliver. */
uint64_t mw_serve_undelivered(const mw_serve *s);
void mw_serve_destroy(mw_serve *s);

#endif
