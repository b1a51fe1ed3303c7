/* The run's shared memory: one memfd made by `memwatch trace` when it starts listening
 * (src/trace/serve.c), mapped MAP_SHARED by every traced process of the run. The script's
 * process and every exec'd Python child receive it over their connection in reply to
 * their hello (channel_link.c); fork children inherit the mapping. Its layout is in
 * run_settings.h (the launcher's and the library's contract):
 *   [0, MW_RUN_SHARED_REGISTRY_OFFSET)   the run's counters (channel.c: object ids, seqs)
 *   [MW_RUN_SHARED_REGISTRY_OFFSET, end) reserved for the shared-watch registry
 * The memfd is sparse: only the pages touched cost memory. */
#ifndef MW_RUN_SHARED_H
#define MW_RUN_SHARED_H

#include <stddef.h>

#include "run_settings.h"

/* The base of the mapping; NULL when this process is untraced (no memfd received, or
 * mapping it failed). Read-only after the constructor; inherited by fork children. */
void *mw_run_shared(void);
/* Its size in bytes (MW_RUN_SHARED_SIZE when mapped, 0 otherwise). */
size_t mw_run_shared_size(void);
/* Maps the memfd received from memwatch trace and closes fd (whatever happens). 0, or a
 * negative errno (e.g. -EINVAL when its size is not the run's). Only before the script
 * runs: the mapping is made once per process image. */
int mw_run_shared_map(int fd);

#endif
