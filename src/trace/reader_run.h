/* What a trace says about the interpreter that ran the script (run.python_version, meta's
 * python_path and python_chosen_by: schemas/trace.sql), for people. */
#ifndef MW_TRACE_READER_RUN_H
#define MW_TRACE_READER_RUN_H

#include "reader.h"

struct mw_trace_python {
    char *version;     /* "3.12.1": the first word of sys.version; NULL when not recorded */
    char *path;        /* NULL when not recorded (traces before issue 17) */
    char *chosen_by;   /* "--python", "MEMWATCH_PYTHON", "VIRTUAL_ENV", "PATH", "default" */
};

/* Fills *out (each string malloc'd, or NULL). 0, or -1 when the trace could not be read
 * (sqlite3_errmsg of the reader's connection says why). Values come from the file as
 * they are: show them escaped (show.h). */
int mw_trace_reader_python(mw_trace_reader *r, struct mw_trace_python *out);
void mw_trace_python_free(struct mw_trace_python *p);

#endif
