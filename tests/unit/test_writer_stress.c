/* Writer stress (issue 9): several producer threads stream records into one pipe, the
 * writer consumes it in its own thread, and a reader opens the growing trace and walks it
 * at the same time, as `memwatch query` may while a run is still going. Every change must
 * arrive exactly once. Short in the normal suite; tests/sanitize.sh runs it under
 * ThreadSanitizer (and MW_STRESS_CHANGES lengthens it). */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reader.h"
#include "record.h"
#include "trace_scratch.h"
#include "unit.h"
#include "writer.h"

#define PRODUCERS 4

static char path[256];
static int pipe_fd[2];
static pthread_mutex_t pipe_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t next_seq = 1;          /* under pipe_lock: the stream is in seq order */
static uint64_t per_producer = 4000;
static atomic_int writer_done;
static atomic_int reader_rounds;

static void *producer(void *arg)
{
    uint64_t id = (uint64_t)(uintptr_t)arg;
    struct mw_rec_buf b = {0};
    char tag[16];
    snprintf(tag, sizeof tag, "p%llu", (unsigned long long)id);
    struct mw_rec_object o = {.id = id, .tag = tag, .type_name = "bytearray", .size = 64,
                              .ndim = -1, .time_ns = (int64_t)id};
    pthread_mutex_lock(&pipe_lock);
    if (mw_rec_encode_object(&b, &o) || mw_rec_buf_flush(&b, pipe_fd[1]))
        abort();
    pthread_mutex_unlock(&pipe_lock);
    for (uint64_t i = 0; i < per_producer; i++) {
        unsigned char old = (unsigned char)i, new_ = (unsigned char)(i + 1);
        struct mw_rec_range g = {i % 64, 1, &old, &new_};
        pthread_mutex_lock(&pipe_lock);
        struct mw_rec_change c = {.seq = next_seq++, .time_ns = (int64_t)i, .object_id = id,
                                  .thread_id = (int64_t)id, .thread_name = tag, .file = "s.py",
                                  .line = (int)i, .function = "f", .nranges = 1, .ranges = &g};
        if (mw_rec_encode_change(&b, &c))
            abort();
        /* Flush in small batches so the pipe interleaves the producers. */
        if ((i % 16 == 15 || i + 1 == per_producer) && mw_rec_buf_flush(&b, pipe_fd[1]))
            abort();
        pthread_mutex_unlock(&pipe_lock);
    }
    mw_rec_buf_free(&b);
    return NULL;
}

static void *writer_thread(void *arg)
{
    mw_trace_writer *w = arg;
    intptr_t rc = mw_trace_writer_consume_fd(w, pipe_fd[0]);
    atomic_store(&writer_done, 1);
    return (void *)rc;
}

/* Opens the trace over and over while it grows; whatever it sees must be whole. */
static void *reader_thread(void *arg)
{
    (void)arg;
    while (!atomic_load(&writer_done)) {
        mw_trace_reader *r = NULL;
        if (mw_trace_reader_open(path, &r, NULL) == 0) {
            mw_trace_iter *it = NULL;
            struct mw_trace_filter f = {0};
            f.limit = 500;
            if (mw_trace_iter_start(r, &f, &it) == 0) {
                struct mw_trace_row row;
                while (mw_trace_iter_next(it, &row) == 1)
                    if (row.length != 1 || !row.new_ || !row.old ||
                        (unsigned char)(row.old[0] + 1) != row.new_[0])
                        abort();
            }
            mw_trace_iter_finish(it);
            atomic_fetch_add(&reader_rounds, 1);
        }
        mw_trace_reader_close(r);
        usleep(2000);
    }
    return NULL;
}

static void test_producers_writer_reader(void)
{
    mw_trace_writer *w;
    CHECK_EQ_INT(mw_trace_writer_create(path, 0, &w), 0);
    struct mw_run_info run = {.mode = "script", .target = "s.py", .cwd = "/"};
    CHECK_EQ_INT(mw_trace_writer_begin_run(w, &run), 0);
    CHECK_EQ_INT(mw_trace_writer_commit(w), 0);
    CHECK_EQ_INT(pipe(pipe_fd), 0);
    pthread_t wt, rt, pt[PRODUCERS];
    pthread_create(&wt, NULL, writer_thread, w);
    pthread_create(&rt, NULL, reader_thread, NULL);
    for (uintptr_t i = 0; i < PRODUCERS; i++)
        pthread_create(&pt[i], NULL, producer, (void *)(i + 1));
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(pt[i], NULL);
    close(pipe_fd[1]);
    void *rc;
    pthread_join(wt, &rc);
    pthread_join(rt, NULL);
    close(pipe_fd[0]);
    CHECK_EQ_INT((intptr_t)rc, 0);
    struct mw_run_end end = {.exit_status = 0};
    CHECK_EQ_INT(mw_trace_writer_end_run(w, &end), 0);
    CHECK_EQ_INT(mw_trace_writer_close(w), 0);
    CHECK_EQ_INT(scratch_int(path, "SELECT count(*) FROM changes"), PRODUCERS * per_producer);
    CHECK_EQ_INT(scratch_int(path, "SELECT count(DISTINCT seq) FROM change_ranges"), PRODUCERS * per_producer);
    CHECK_EQ_INT(scratch_int(path, "SELECT max(seq) FROM changes"), PRODUCERS * per_producer);
    CHECK_EQ_INT(scratch_int(path, "SELECT count(*) FROM objects"), PRODUCERS);
    fprintf(stderr, "reader opened the growing trace %d times\n", atomic_load(&reader_rounds));
}

int main(void)
{
    const char *n = getenv("MW_STRESS_CHANGES");
    if (n && atoll(n) > 0)
        per_producer = (uint64_t)atoll(n);
    if (scratch_begin("writer-stress") < 0)
        return 1;
    snprintf(path, sizeof path, "%s", scratch_path("stress.db"));
    RUN(test_producers_writer_reader);
    scratch_end();
    return UNIT_DONE();
}
