/* mw_strerror: names a status from src/ (a negative MW_E* code or -errno). */
#include <string.h>

#include "mw_error.h"

const char *mw_strerror(int status)
{
    switch (status) {
    case 0: return "success";
    case MW_ELIMIT: return "memory limit reached";
    case MW_EEXIST: return "already watched";
    case MW_ENOENT: return "not watched";
    case MW_EINVAL: return "invalid argument";
    case MW_EUNMAPPED: return "memory range is not mapped";
    case MW_EOWN: return "memory range belongs to memwatch itself";
    case MW_EBACKEND: return "detection backend unavailable";
    case MW_ETRACE: return "trace file is not usable";
    case MW_ESCHEMA: return "trace was written by a newer memwatch";
    case MW_EFORMAT: return "malformed record or file";
    default: break;
    }
    if (status < 0 && status > MW_EFIRST) {
        /* strerrordesc_np returns a static string: thread-safe, unlike strerror. */
        const char *s = strerrordesc_np(-status);
        if (s)
            return s;
    }
    return "unknown error";
}
