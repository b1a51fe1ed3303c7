/* Async-signal-safe: everything here runs inside the fault handler of the writing thread.
 *
 * It relies on CPython 3.11's frame layout (Py_BUILD_CORE headers), exactly as
 * faulthandler's traceback dump does: the thread state from the GIL-state TLS key, its
 * current frame, the frame's code object and last instruction. The build refuses other
 * Python versions (cmake/MemwatchPython.cmake). Strings are copied out here, because the
 * code object may be gone by the time the change is reported. */
#define PY_SSIZE_T_CLEAN
#define Py_BUILD_CORE 1
#include <Python.h>
#include <internal/pycore_frame.h>

#if PY_VERSION_HEX < 0x030B0000 || PY_VERSION_HEX >= 0x030C0000
#error "memwatch's writer attribution supports CPython 3.11 only"
#endif

#include "location.h"

/* Copies a str as UTF-8 without any Python call (pure reads and arithmetic), truncating at
 * a character boundary. */
static void copy_str(char *dst, size_t size, PyObject *s)
{
    size_t n = 0;
    if (s && PyUnicode_Check(s) && PyUnicode_IS_READY(s)) {
        Py_ssize_t len = PyUnicode_GET_LENGTH(s);
        int kind = PyUnicode_KIND(s);
        const void *data = PyUnicode_DATA(s);
        for (Py_ssize_t i = 0; i < len; i++) {
            Py_UCS4 ch = PyUnicode_READ(kind, data, i);
            unsigned char enc[4];
            size_t k;
            if (ch < 0x80) {
                enc[0] = (unsigned char)ch;
                k = 1;
            } else if (ch < 0x800) {
                enc[0] = (unsigned char)(0xC0 | (ch >> 6));
                enc[1] = (unsigned char)(0x80 | (ch & 0x3F));
                k = 2;
            } else if (ch < 0x10000) {
                enc[0] = (unsigned char)(0xE0 | (ch >> 12));
                enc[1] = (unsigned char)(0x80 | ((ch >> 6) & 0x3F));
                enc[2] = (unsigned char)(0x80 | (ch & 0x3F));
                k = 3;
            } else {
                enc[0] = (unsigned char)(0xF0 | (ch >> 18));
                enc[1] = (unsigned char)(0x80 | ((ch >> 12) & 0x3F));
                enc[2] = (unsigned char)(0x80 | ((ch >> 6) & 0x3F));
                enc[3] = (unsigned char)(0x80 | (ch & 0x3F));
                k = 4;
            }
            if (n + k + 1 > size)
                break;
            for (size_t j = 0; j < k; j++)
                dst[n++] = (char)enc[j];
        }
    }
    dst[n] = '\0';
}

void mw_location_capture(struct mw_writer *out)
{
    out->file[0] = out->function[0] = '\0';
    out->line = 0;
    PyThreadState *ts = PyGILState_GetThisThreadState();
    if (!ts || !ts->cframe)
        return;
    _PyInterpreterFrame *frame = ts->cframe->current_frame;
    while (frame && _PyFrame_IsIncomplete(frame))
        frame = frame->previous;
    if (!frame || !frame->f_code)
        return;
    PyCodeObject *code = frame->f_code;
    int lasti = _PyInterpreterFrame_LASTI(frame);
    mw_location_of_code(out, code,
                        lasti >= 0 ? PyCode_Addr2Line(code, lasti * (int)sizeof(_Py_CODEUNIT)) : 0);
}

void mw_location_of_code(struct mw_writer *out, PyCodeObject *code, int line)
{
    out->line = line;
    copy_str(out->file, sizeof out->file, code ? code->co_filename : NULL);
    copy_str(out->function, sizeof out->function, code ? code->co_qualname : NULL);
}
