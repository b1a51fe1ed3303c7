/* memwatch.Change: the struct sequence a callback receives for one change. */
#ifndef MW_CHANGE_H
#define MW_CHANGE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>

#include "elements.h"
#include "record.h"
#include "watcher.h"

/* Change's fields, in order. The first MW_CHANGE_IN_SEQUENCE are the tuple part (what
 * len() counts and unpacking gives); the others are attributes only. */
enum mw_change_field {
    MW_CHANGE_TAG,
    MW_CHANGE_OFFSET,
    MW_CHANGE_OLD,
    MW_CHANGE_NEW,
    MW_CHANGE_FILE,
    MW_CHANGE_LINE,
    MW_CHANGE_FUNCTION,
    MW_CHANGE_THREAD,
    MW_CHANGE_THREAD_ID,
    MW_CHANGE_SEQ,
    MW_CHANGE_TIME_NS,
    MW_CHANGE_RANGES,
    MW_CHANGE_OLD_VALUE,
    MW_CHANGE_NEW_VALUE,
    MW_CHANGE_NATIVE_SYMBOL,
    MW_CHANGE_NATIVE_LIBRARY,
    MW_CHANGE_ELEMENTS,
    MW_CHANGE_NFIELDS
};
#define MW_CHANGE_IN_SEQUENCE MW_CHANGE_THREAD_ID

/* What routing knows of one change once it is in the trace: what Change and --on-nan are
 * made from. Everything is borrowed for the duration of the call. */
struct mw_change_info {
    PyObject *tag;                         /* str */
    const mw_elem_layout *layout;          /* element layout of a typed object, else NULL */
    size_t value_size;                     /* bytes of the object's value (C order) */
    const unsigned char *old_value;        /* value_size bytes, as far as old_known says */
    const unsigned char *new_value;        /* value_size bytes */
    int old_known;                         /* every old byte is known */
    const struct mw_rec_range *ranges;     /* the changed ranges, in the value's coordinates */
    size_t nranges;
    const struct mw_writer *writer;
    PyObject *thread_name;                 /* str or None */
    const char *native_symbol;             /* native writer (attribution.h); NULL: none */
    const char *native_library;            /* its library; NULL with native_symbol */
    uint64_t seq;
    uint64_t time_ns;
};

/* Creates the Change type (once per process) and adds it to module. 0, or -1 with an
 * exception. */
int mw_change_add_type(PyObject *module);
/* A new Change for c; old_value and new_value hold the whole values only with capture_full.
 * NULL with an exception. */
PyObject *mw_change_new(const struct mw_change_info *c, int capture_full);
/* Borrowed field of a Change made by mw_change_new. */
static inline PyObject *mw_change_field(PyObject *change, enum mw_change_field field)
{
    return PyStructSequence_GET_ITEM(change, field);
}

#endif
