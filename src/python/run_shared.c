/* The run's shared memory (run_shared.h). mmap and fstat are raw system calls: the C
 * library's fstat is interposed by this library (kwrite_interpose.c), and resolving the
 * real one allocates, which must not happen beside the script's objects. */
#include "run_shared.h"

#include <errno.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static void *base;
static size_t size;

void *mw_run_shared(void)
{
    return base;
}

size_t mw_run_shared_size(void)
{
    return base ? size : 0;
}

int mw_run_shared_map(int fd)
{
    struct stat st;
    int rc = 0;
    if (syscall(SYS_fstat, fd, &st) != 0)
        rc = -errno;
    else if ((size_t)st.st_size != MW_RUN_SHARED_SIZE)
        rc = -EINVAL;   /* not the launcher's memfd: a memwatch of another build */
    void *p = rc == 0 ? mmap(NULL, MW_RUN_SHARED_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                      : MAP_FAILED;
    if (rc == 0 && p == MAP_FAILED)
        rc = -errno;
    syscall(SYS_close, fd);
    if (rc == 0) {
        base = p;
        size = MW_RUN_SHARED_SIZE;
    }
    return rc;
}
