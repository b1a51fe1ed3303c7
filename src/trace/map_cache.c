/* Large private mappings kept for reuse (see map_cache.h). */
#include "map_cache.h"

#include <pthread.h>
#include <sys/mman.h>

#define SLOTS 4

static struct {
    void *p;
    size_t cap;
} slot[SLOTS];
static size_t cached_bytes;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

void mw_map_cache_lock_for_fork(void) { pthread_mutex_lock(&lock); }
void mw_map_cache_unlock_after_fork(void) { pthread_mutex_unlock(&lock); }

void *mw_map_take(size_t len, size_t *cap)
{
    /* The smallest cached mapping that fits, unless it is more than twice what is asked
     * (a small request would pin a large mapping). */
    pthread_mutex_lock(&lock);
    int best = -1;
    for (int i = 0; i < SLOTS; i++)
        if (slot[i].p && slot[i].cap >= len && slot[i].cap / 2 <= len &&
            (best < 0 || slot[i].cap < slot[best].cap))
            best = i;
    if (best >= 0) {
        void *p = slot[best].p;
        *cap = slot[best].cap;
        cached_bytes -= slot[best].cap;
        slot[best].p = NULL;
        pthread_mutex_unlock(&lock);
        return p;
    }
    pthread_mutex_unlock(&lock);
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    *cap = len;
    return p;
}

void mw_map_give(void *p, size_t cap)
{
    if (!p)
        return;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < SLOTS && cached_bytes + cap <= MW_MAP_CACHE_BYTES; i++)
        if (!slot[i].p) {
            slot[i].p = p;
            slot[i].cap = cap;
            cached_bytes += cap;
            pthread_mutex_unlock(&lock);
            return;
        }
    pthread_mutex_unlock(&lock);
    munmap(p, cap);
}
