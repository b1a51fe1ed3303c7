/* The trace writer's sites (schemas/trace.sql, sites): where changes were written from (a
 * process, a thread, a source line, native code), one row each, so that a change's row
 * holds a site id instead of its file name, function and thread name.
 *
 * DESIGN
 * - Most changes come in runs from one place (a check finds every change of a loop at one
 *   line), so a site is looked up by a hash of its fields in a cache of the sites met
 *   lately, and a change from a place in the cache costs a hash and one comparison.
 * - The cache is direct-mapped with a fixed number of slots: a place whose slot another
 *   place took meanwhile gets a new row when it comes back. Ids name rows, not places, so
 *   nothing is lost, and the writer's memory stays bounded however many places write. */
#ifndef MW_TRACE_SITE_STORE_H
#define MW_TRACE_SITE_STORE_H

#include <stdint.h>

#include "record.h"

typedef struct sqlite3 sqlite3;
typedef struct mw_site_store mw_site_store;

/* 0, or -ENOMEM / MW_ETRACE (the statement could not be prepared). */
int mw_site_store_create(sqlite3 *db, mw_site_store **out);
/* Finalizes its statement, so that the connection can close; only destroy may follow. */
void mw_site_store_release_db(mw_site_store *s);
void mw_site_store_destroy(mw_site_store *s);   /* accepts NULL */

/* The site of change c (its pid, thread, file, line, function, native code): 0 and *id,
 * the id of its row in sites (added when the place is not in the cache), or 0 when
 * nothing of it is known (the change's site_id is then NULL); MW_ETRACE when the row
 * could not be written, -ENOMEM. */
int mw_site_store_id(mw_site_store *s, const struct mw_rec_change *c, int64_t *id);
/* The open transaction was rolled back: the rows it added are gone, so the cache forgets
 * every place (the ids go on growing: none is given twice). */
void mw_site_store_forget(mw_site_store *s);

#endif
