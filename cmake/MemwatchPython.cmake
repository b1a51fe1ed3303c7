# Finds the headers and version of ${MEMWATCH_PYTHON}. memwatch does not link libpython:
# its injected library resolves the C API from the interpreter process it is loaded into.
execute_process(
  COMMAND ${MEMWATCH_PYTHON} -c "import sys, sysconfig; print(sysconfig.get_paths()['include']); print('%d.%d' % sys.version_info[:2])"
  OUTPUT_VARIABLE _mw_py_out RESULT_VARIABLE _mw_py_rc OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _mw_py_rc EQUAL 0)
  message(FATAL_ERROR "memwatch: cannot run MEMWATCH_PYTHON='${MEMWATCH_PYTHON}'. "
    "Install python3.11-dev (apt-get install python3.11-dev) or point -DMEMWATCH_PYTHON at another interpreter.")
endif()
string(REPLACE "\n" ";" _mw_py_out "${_mw_py_out}")
list(GET _mw_py_out 0 MEMWATCH_PYTHON_INCLUDE_DIR)
list(GET _mw_py_out 1 MEMWATCH_PYTHON_VERSION)
if(NOT EXISTS "${MEMWATCH_PYTHON_INCLUDE_DIR}/Python.h")
  message(FATAL_ERROR "memwatch: no Python.h in ${MEMWATCH_PYTHON_INCLUDE_DIR}; install the interpreter's -dev package (python${MEMWATCH_PYTHON_VERSION}-dev)")
endif()
# Writer attribution reads interpreter frames the way faulthandler does, which depends on
# CPython's internal layout. Only versions whose layout memwatch knows are accepted.
set(MEMWATCH_SUPPORTED_PYTHON_VERSIONS 3.11)
if(NOT MEMWATCH_PYTHON_VERSION IN_LIST MEMWATCH_SUPPORTED_PYTHON_VERSIONS)
  message(FATAL_ERROR "memwatch: Python ${MEMWATCH_PYTHON_VERSION} (${MEMWATCH_PYTHON}) is not supported: "
    "writer attribution depends on CPython internals known for ${MEMWATCH_SUPPORTED_PYTHON_VERSIONS} only")
endif()
message(STATUS "memwatch: tracing with ${MEMWATCH_PYTHON} (Python ${MEMWATCH_PYTHON_VERSION})")
