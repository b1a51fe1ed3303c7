/* Async-signal-safe: everything here runs inside the fault handler of the writing thread
 * (or, for mw_location_caller, in a line event with the GIL held).
 *
 * DESIGN
 * - It reads interpreter frames the way faulthandler's traceback dump does (CPython's
 *   Python/traceback.c, dump_traceback and dump_frame), with the internal headers of the
 *   version this library is built for (Py_BUILD_CORE): the thread state from the GIL-state
 *   TLS key, its innermost frame, the frame's code object and its current instruction,
 *   turned into a line by PyCode_Addr2Line (which walks the line table: no allocation).
 * - What changed between versions, and nothing else, is in the helpers below:
 *     3.11  tstate->cframe->current_frame; frame->f_code; _PyInterpreterFrame_LASTI
 *           from prev_instr.
 *     3.12  the same fields, but C-to-Python entry frames (owned by the C stack, holding
 *           the interpreter's trampoline code) now sit in the chain: skipped.
 *     3.13  tstate->current_frame (the _PyCFrame is gone); frame->f_executable, which may
 *           be something other than a code object; LASTI from instr_ptr, the instruction
 *           executing now.
 *   Incomplete frames (a call still setting up its frame) are skipped in every version,
 *   as faulthandler does.
 * - One library is built per CPython minor version (src/python/CMakeLists.txt), and the
 *   launcher runs it only in an interpreter of that version: layouts are stable within
 *   a minor version, not across them. inject.c checks the running version once more.
 * - Strings are copied out here, because the code object may be gone by the time the
 *   change is reported. */
#define PY_SSIZE_T_CLEAN
#define Py_BUILD_CORE 1
#include <Python.h>
#include <internal/pycore_frame.h>

#if PY_VERSION_HEX < 0x030B0000 || PY_VERSION_HEX >= 0x030E0000
#error "memwatch's writer attribution knows the frames of CPython 3.11, 3.12 and 3.13 only"
#endif

#include "location.h"

/* Copies a str as UTF-8 without any Python call (pure reads and arithmetic), truncating at
 * a character boundary. */
static void copy_str(char *dst, size_t size, PyObject *s)
{
    size_t n = 0;
    int usable = s && PyUnicode_Check(s);
#if PY_VERSION_HEX < 0x030C0000
    usable = usable && PyUnicode_IS_READY(s);   /* always ready from 3.12 on */
#endif
    if (usable) {
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

/* The code object a frame runs, or NULL (3.13: the frame may run something else). */
static PyCodeObject *frame_code(_PyInterpreterFrame *frame)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *exec = frame->f_executable;
    return exec && PyCode_Check(exec) ? (PyCodeObject *)exec : NULL;
#else
    return frame->f_code;
#endif
}

/* Frames that run no line of Python: entry frames owned by the C stack (3.12 on; 3.13's
 * _PyFrame_IsIncomplete says so itself), frames without code, and incomplete ones. */
static int runs_no_line(_PyInterpreterFrame *frame)
{
#if PY_VERSION_HEX >= 0x030C0000
    if (frame->owner == FRAME_OWNED_BY_CSTACK)
        return 1;
#endif
    if (!frame_code(frame))
        return 1;
    return _PyFrame_IsIncomplete(frame);
}

/* The first frame from frame on (following previous) that runs a line of Python. */
static _PyInterpreterFrame *first_complete(_PyInterpreterFrame *frame)
{
    while (frame && runs_no_line(frame))
        frame = frame->previous;
    return frame;
}

static _PyInterpreterFrame *innermost(PyThreadState *ts)
{
#if PY_VERSION_HEX >= 0x030D0000
    return first_complete(ts->current_frame);
#else
    return ts->cframe ? first_complete(ts->cframe->current_frame) : NULL;
#endif
}

/* The line frame is executing. */
static int frame_line(_PyInterpreterFrame *frame)
{
    PyCodeObject *code = frame_code(frame);
    int lasti = _PyInterpreterFrame_LASTI(frame);
    return lasti >= 0 ? PyCode_Addr2Line(code, lasti * (int)sizeof(_Py_CODEUNIT)) : 0;
}

void mw_location_capture(struct mw_writer *out)
{
    out->file[0] = out->function[0] = '\0';
    out->line = 0;
    PyThreadState *ts = PyGILState_GetThisThreadState();
    _PyInterpreterFrame *frame = ts ? innermost(ts) : NULL;
    if (frame)
        mw_location_of_code(out, frame_code(frame), frame_line(frame));
}

PyCodeObject *mw_location_current_code(void)
{
    PyThreadState *ts = PyGILState_GetThisThreadState();
    _PyInterpreterFrame *frame = ts ? innermost(ts) : NULL;
    return frame ? frame_code(frame) : NULL;
}

int mw_location_current(PyCodeObject **code, int *line)
{
    PyThreadState *ts = PyGILState_GetThisThreadState();
    _PyInterpreterFrame *frame = ts ? innermost(ts) : NULL;
    *code = frame ? frame_code(frame) : NULL;
    *line = frame ? frame_line(frame) : 0;
    return frame != NULL;
}

int mw_location_caller(PyCodeObject **code, int *line)
{
    PyThreadState *ts = PyGILState_GetThisThreadState();
    _PyInterpreterFrame *frame = ts ? innermost(ts) : NULL;
    frame = frame ? first_complete(frame->previous) : NULL;
    *code = frame ? frame_code(frame) : NULL;
    *line = frame ? frame_line(frame) : 0;
    return frame != NULL;
}

void mw_location_of_code(struct mw_writer *out, PyCodeObject *code, int line)
{
    out->line = line;
    copy_str(out->file, sizeof out->file, code ? code->co_filename : NULL);
    copy_str(out->function, sizeof out->function, code ? code->co_qualname : NULL);
}
