/* One error model for src/: functions return int, 0 on success, a negative MW_E* code or
 * -errno on failure. mw_strerror() names either kind. src/ never prints and never exits. */
#ifndef MW_ERROR_H
#define MW_ERROR_H

enum {
    MW_EFIRST = -10000,
    MW_ELIMIT,       /* the watch would exceed the watcher's memory limit */
    MW_EEXIST,       /* the tag or range is already watched */
    MW_ENOENT,       /* no such tag / watch */
    MW_EINVAL,       /* bad argument (NULL address, zero size, ...) */
    MW_EUNMAPPED,    /* the range is not mapped memory */
    MW_EOWN,         /* the range overlaps memwatch's own memory */
    MW_EBACKEND,     /* the requested detection backend is unavailable here */
    MW_ETRACE,       /* the trace file is not usable (detail on the handle) */
    MW_ESCHEMA,      /* the trace was written by a newer memwatch */
    MW_EFORMAT,      /* malformed record or file */
    MW_ELAST
};

const char *mw_strerror(int status);

#endif
