/* src/trace/outfile.c: what -f may replace, one writer per trace, replacements written
 * aside and moved into place, nothing left behind by a refusal or an abandon. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "outfile.h"
#include "schema.h"
#include "trace_scratch.h"
#include "unit.h"
#include "writer.h"

static int exists(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0;
}

static void write_text(const char *p, const char *text)
{
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
}

static int has_text(const char *p, const char *want)
{
    char buf[64] = "";
    FILE *f = fopen(p, "r");
    if (!f)
        return 0;
    int ok = fgets(buf, sizeof buf, f) && strcmp(buf, want) == 0;
    fclose(f);
    return ok;
}

/* Files in the scratch directory whose name starts with a dot: temporary files left. */
static int temporaries(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s' | grep '^\\.')\"", scratch_dir);
    return system(cmd) != 0;
}

static void test_new_trace_in_place_and_locked(void)
{
    const char *p = scratch_path("new.db");
    struct mw_outfile a, b;
    CHECK_EQ_INT(mw_outfile_claim(&a, p, 0, MW_OUTFILE_TRACE), 0);
    CHECK(strcmp(mw_outfile_write_path(&a), p) == 0 && exists(p));
    /* a second writer: refused with force, and without it the file exists */
    CHECK_EQ_INT(mw_outfile_claim(&b, p, 1, MW_OUTFILE_TRACE), -EBUSY);
    CHECK(strstr(b.err, "being written by another memwatch trace") != NULL);
    CHECK_EQ_INT(mw_outfile_claim(&b, p, 0, MW_OUTFILE_TRACE), -EEXIST);
    CHECK_EQ_INT(mw_outfile_commit(&a), 0);
    CHECK(!temporaries());
}

static void test_replace_only_traces(void)
{
    const char *text = scratch_path("notes.txt"), *empty = scratch_path("empty.db");
    struct mw_outfile o;
    write_text(text, "precious\n");
    CHECK_EQ_INT(mw_outfile_claim(&o, text, 1, MW_OUTFILE_TRACE), -EPERM);
    CHECK(strstr(o.err, "is not a memwatch trace") != NULL);
    CHECK_EQ_INT(mw_outfile_claim(&o, scratch_dir, 1, MW_OUTFILE_TRACE), -EISDIR);
    const char *fifo = scratch_path("fifo");
    CHECK(mkfifo(fifo, 0600) == 0);
    CHECK_EQ_INT(mw_outfile_claim(&o, fifo, 1, MW_OUTFILE_TRACE), -EPERM);
    CHECK(strstr(o.err, "is a FIFO") != NULL);
    unlink(fifo);
    CHECK(!temporaries());
    /* an empty file is replaced: written aside, moved over it at the commit */
    write_text(empty, "");
    CHECK_EQ_INT(mw_outfile_claim(&o, empty, 1, MW_OUTFILE_TRACE), 0);
    CHECK(strcmp(mw_outfile_write_path(&o), empty) != 0);
    write_text(mw_outfile_write_path(&o), "new content");
    CHECK_EQ_INT(mw_outfile_commit(&o), 0);
    CHECK(has_text(empty, "new content"));
    CHECK(!temporaries());
}

static void test_abandon_and_reports(void)
{
    const char *trace = scratch_path("t.db"), *page = scratch_path("page.html");
    mw_trace_writer *w;
    CHECK_EQ_INT(mw_trace_writer_create(trace, 0, &w), 0);
    CHECK_EQ_INT(mw_trace_writer_close(w), 0);
    struct mw_outfile o;
    /* a replacement abandoned: the old trace stays, the temporary file goes */
    CHECK_EQ_INT(mw_outfile_claim(&o, trace, 1, MW_OUTFILE_TRACE), 0);
    write_text(mw_outfile_write_path(&o), "half");
    mw_outfile_abandon(&o);
    CHECK_EQ_INT(scratch_int(trace, "PRAGMA user_version"), mw_trace_schema_version);
    CHECK(!temporaries());
    /* a report never replaces an SQLite database, and replaces a page with -f */
    CHECK_EQ_INT(mw_outfile_claim(&o, trace, 1, MW_OUTFILE_REPORT), -EPERM);
    write_text(page, "old");
    CHECK_EQ_INT(mw_outfile_claim(&o, page, 0, MW_OUTFILE_REPORT), -EEXIST);
    CHECK_EQ_INT(mw_outfile_claim(&o, page, 1, MW_OUTFILE_REPORT), 0);
    write_text(mw_outfile_write_path(&o), "new");
    CHECK_EQ_INT(mw_outfile_commit(&o), 0);
    /* a new page whose name is taken while it is written: not replaced */
    const char *late = scratch_path("late.html");
    CHECK_EQ_INT(mw_outfile_claim(&o, late, 0, MW_OUTFILE_REPORT), 0);
    write_text(late, "someone else's");
    CHECK_EQ_INT(mw_outfile_commit(&o), -EEXIST);
    CHECK(has_text(late, "someone else's"));
    CHECK(has_text(page, "new"));
    CHECK(!temporaries());
}

int main(void)
{
    if (scratch_begin("outfile") < 0)
        return 1;
    RUN(test_new_trace_in_place_and_locked);
    RUN(test_replace_only_traces);
    RUN(test_abandon_and_reports);
    scratch_end();
    return UNIT_DONE();
}
