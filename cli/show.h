/* Text from a trace (tags, file, function and thread names, element names) or from the
 * command line, shown to people on a terminal (issue 14, items 3 and 10).
 *
 * A trace's strings are the traced program's and can hold anything: an escape sequence
 * that retitles or recolours the terminal, BEL, CR, a newline that forges a row, invalid
 * UTF-8, or four megabytes in one tag. Human-readable output shows them the way git shows
 * odd path names: a plain string as it is; any other in double quotes with C escapes
 * (\a \b \t \n \v \f \r \" \\ by name, other bytes as \ooo in octal), so that
 * "\033]0;x\a" is shown as those characters and can never be taken for a plain name. The
 * bytes escaped are the C0 controls and DEL, the C1 controls (U+0080-U+009F), the Unicode
 * controls that reorder or embed text (U+202A-U+202E, U+2066-U+2069), and every byte of
 * invalid UTF-8; other UTF-8 is shown as it is. Machine formats (CSV, JSON, JSONL) never
 * come here: they keep the exact bytes. */
#ifndef MW_CLI_SHOW_H
#define MW_CLI_SHOW_H

#include <stddef.h>
#include <stdio.h>

/* The longest text a table cell shows, in characters. */
#define MW_SHOW_CELL_MAX 80
/* ... and a name inside a message or a heading. */
#define MW_SHOW_NAME_MAX 120
/* What marks the place where a shortened text lost its middle. */
#define MW_SHOW_CUT "\xe2\x80\xa6"   /* U+2026 HORIZONTAL ELLIPSIS */

/* The n bytes at s as shown: plain, or quoted with escapes. When the result is longer than
 * max characters (0: no limit), its middle is left out: the start and the end are kept
 * around MW_SHOW_CUT, and *cut (when not NULL) is set to 1. malloc'd (the caller frees
 * it), or NULL when out of memory. */
char *mw_show(const char *s, size_t n, size_t max, int *cut);
/* The same for a value that is already written in an escaping notation of its own (a
 * Python repr: b'\x1b', 'caf\xe9'): never quoted, only what a terminal would act on is
 * escaped. */
char *mw_show_repr(const char *s, size_t n, size_t max, int *cut);
/* A NUL-terminated string as a name in a message: 'name' when it is plain, else quoted
 * with escapes as above, at most MW_SHOW_NAME_MAX characters. The result is one of
 * MW_SHOW_SLOTS buffers, used in turn: valid until MW_SHOW_SLOTS more calls. NULL is
 * shown as '(null)'. */
#define MW_SHOW_SLOTS 8
const char *mw_show_name(const char *s);
/* Writes a message made elsewhere (SQLite's, the reader's) to f with what a terminal would
 * act on escaped as above, and nothing added or quoted: the last line of defence of every
 * "memwatch: ..." line. */
void mw_show_message(FILE *f, const char *s);
/* A path as one word of a command line to paste into a POSIX shell: plain when it holds
 * only characters no shell acts on, else in single quotes, or, when it holds a single
 * quote or must be escaped as above, in double quotes with $, ` and \ escaped too (no
 * expansion runs when it is pasted); "./" before a name that starts with '-', so that it
 * is not taken for an option. malloc'd (the caller frees it), or NULL when out of
 * memory. */
char *mw_show_shell_word(const char *path);
/* The characters of a text that mw_show made (plain ASCII or valid UTF-8): its width in
 * a table. */
size_t mw_show_width(const char *s);

#endif
