/* See memory_map.h. One ioctl per query where the kernel has PROCMAP_QUERY (Linux 6.11),
 * else a scan of /proc/self/maps. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "memory_map.h"
#include "mw_error.h"

/* PROCMAP_QUERY: Debian 12's kernel headers predate it. */
struct procmap_query {
    uint64_t size, query_flags, query_addr, vma_start, vma_end, vma_flags, vma_page_size,
        vma_offset, inode;
    uint32_t dev_major, dev_minor, vma_name_size, build_id_size;
    uint64_t vma_name_addr, build_id_addr;
};
#define PROCMAP_QUERY_IOCTL _IOWR('f', 17, struct procmap_query)
#define PQ_READ 0x1
#define PQ_WRITE 0x2
#define PQ_EXEC 0x4
#define PQ_SHARED 0x8

/* The engine (its lock held) and the Python layer (shared_watch.c, fork.c: the GIL) both
 * query: this leaf lock guards the descriptor and what is known of the kernel. */
static pthread_mutex_t query_lock = PTHREAD_MUTEX_INITIALIZER;
static int maps_fd = -1;
static int procmap_query_ok = -1;   /* -1 unknown, 0 no, 1 yes */

/* An open /proc/self/maps describes the process that opened it: a forked child must open
 * its own. */
static void forget_maps_in_child(void)
{
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    query_lock = fresh;   /* another thread may have held it at the fork */
    if (maps_fd >= 0)
        close(maps_fd);
    maps_fd = -1;
}

static void open_maps(void)
{
    static int atfork_registered;
    if (!atfork_registered && pthread_atfork(NULL, NULL, forget_maps_in_child) == 0)
        atfork_registered = 1;
    maps_fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
}

static int perms_to_prot(const char *perms)
{
    return (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0) |
           (perms[2] == 'x' ? PROT_EXEC : 0);
}

int mw_maps_next(FILE *maps, struct mw_vma_identity *out)
{
    char line[512];
    while (fgets(line, sizeof(line), maps)) {
        unsigned long s, e, off, ino;
        unsigned major, minor;
        char perms[5];
        int n = sscanf(line, "%lx-%lx %4s %lx %x:%x %lu", &s, &e, perms, &off, &major, &minor,
                       &ino);
        size_t l = strlen(line);
        while (l > 0 && line[l - 1] != '\n' && fgets(line, sizeof(line), maps))
            l = strlen(line);   /* skip the rest of a long line */
        if (n != 7)
            continue;
        *out = (struct mw_vma_identity){.start = s, .end = e, .prot = perms_to_prot(perms),
                                        .shared = perms[3] == 's', .dev_major = major,
                                        .dev_minor = minor, .inode = ino, .offset = off};
        return 1;
    }
    return 0;
}

/* The maps line covering addr: where the kernel has no PROCMAP_QUERY. */
static int maps_identify(uintptr_t addr, struct mw_vma_identity *out)
{
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return -errno;
    struct mw_vma_identity v;
    int rc = MW_EUNMAPPED;
    while (mw_maps_next(f, &v) && addr >= v.start) {
        if (addr < v.end) {
            *out = v;
            rc = 0;
            break;
        }
    }
    fclose(f);
    return rc;
}

static int identify_locked(uintptr_t addr, struct mw_vma_identity *out)
{
    if (maps_fd < 0 && procmap_query_ok != 0)
        open_maps();
    if (procmap_query_ok != 0 && maps_fd >= 0) {
        struct procmap_query q;
        memset(&q, 0, sizeof(q));
        q.size = sizeof(q);
        q.query_addr = addr;
        if (syscall(SYS_ioctl, maps_fd, PROCMAP_QUERY_IOCTL, &q) == 0) {
            procmap_query_ok = 1;
            *out = (struct mw_vma_identity){.start = q.vma_start, .end = q.vma_end,
                                            .prot = (q.vma_flags & PQ_READ ? PROT_READ : 0) |
                                                    (q.vma_flags & PQ_WRITE ? PROT_WRITE : 0) |
                                                    (q.vma_flags & PQ_EXEC ? PROT_EXEC : 0),
                                            .shared = (q.vma_flags & PQ_SHARED) != 0,
                                            .dev_major = q.dev_major, .dev_minor = q.dev_minor,
                                            .inode = q.inode, .offset = q.vma_offset};
            return 0;
        }
        if (errno == ENOENT)
            return MW_EUNMAPPED;
        procmap_query_ok = 0;   /* ENOTTY/EINVAL: an older kernel */
    }
    return maps_identify(addr, out);
}

int mw_vma_identify(uintptr_t addr, struct mw_vma_identity *out)
{
    pthread_mutex_lock(&query_lock);
    int rc = identify_locked(addr, out);
    pthread_mutex_unlock(&query_lock);
    return rc;
}

int mw_vma_query(uintptr_t addr, uintptr_t *start, uintptr_t *end, int *prot)
{
    struct mw_vma_identity v;
    int rc = mw_vma_identify(addr, &v);
    if (rc == 0) {
        *start = v.start;
        *end = v.end;
        *prot = v.prot;
    }
    return rc;
}
