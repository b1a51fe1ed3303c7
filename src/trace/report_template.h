/* The report's HTML template, embedded at build time from src/trace/report.html (see
 * embed_report.cmake): the page without its data, and where the data goes. */
#ifndef MW_TRACE_REPORT_TEMPLATE_H
#define MW_TRACE_REPORT_TEMPLATE_H

#include <stddef.h>

/* The whole template, NUL-terminated, with the data marker removed. */
extern const char mw_report_template[];
/* The marker's byte offset: the JSON data is written between the two parts. */
extern const size_t mw_report_template_data_at;

#endif
