# The CPython versions memwatch builds an injected library for, one per minor version.
#
# memwatch does not link libpython: each libmemwatch-inject-<X.Y>.so resolves the C API from
# the interpreter process it is loaded into, and is compiled against that version's headers
# (writer attribution and line events read interpreter internals, which change between
# minor versions: src/python/location.c, src/python/line_source.h).
#
# MEMWATCH_PYTHONS names the interpreters (a ;-separated list of paths); empty (the default)
# means every supported CPython with headers found on this machine: Debian's python3 first,
# then python3.N in /usr/bin, /usr/local/bin and on PATH, then pyenv's versions. The first
# interpreter found for a minor version is the one built for. Results:
#   MEMWATCH_PYTHON_VERSIONS        the minor versions built, e.g. 3.11;3.12;3.13
#   MEMWATCH_PYTHON_<X_Y>           the interpreter found for X.Y (tests run scripts in it)
#   MEMWATCH_PYTHON_<X_Y>_INCLUDE   its headers
#   MEMWATCH_TEST_PYTHON            the interpreter most tests use: Debian's python3 when it
#                                   is supported, else the first one found
set(MEMWATCH_SUPPORTED_PYTHON_VERSIONS 3.11 3.12 3.13)
set(MEMWATCH_PYTHONS "" CACHE STRING
  "CPython interpreters (;-separated paths) to build memwatch's injected libraries for; empty: every supported one found")
# Before issue 17 the one interpreter was MEMWATCH_PYTHON; a build directory made then
# still has it cached, and it must not narrow the search.
unset(MEMWATCH_PYTHON CACHE)

# _mw_probe_python(EXE PREFIX): sets PREFIX_OK (TRUE/FALSE), PREFIX_WHY, PREFIX_MINOR,
# PREFIX_VERSION and PREFIX_INCLUDE in the caller's scope.
function(_mw_probe_python exe prefix)
  set(${prefix}_OK FALSE PARENT_SCOPE)
  execute_process(
    COMMAND ${exe} -I -c "import sys, sysconfig; print(sys.implementation.name); print('%d.%d' % sys.version_info[:2]); print('%d.%d.%d' % sys.version_info[:3]); print(sys.abiflags); print(sysconfig.get_paths()['include'])"
    OUTPUT_VARIABLE out RESULT_VARIABLE rc ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE TIMEOUT 30)
  if(NOT rc EQUAL 0)
    set(${prefix}_WHY "cannot run it" PARENT_SCOPE)
    return()
  endif()
  string(REPLACE "\n" ";" out "${out}")
  list(LENGTH out n)
  if(n LESS 4)
    set(${prefix}_WHY "it does not answer as Python does" PARENT_SCOPE)
    return()
  endif()
  list(GET out 0 impl)
  list(GET out 1 minor)
  list(GET out 2 version)
  if(n EQUAL 5)
    list(GET out 3 abiflags)
    list(GET out 4 include)
  else()
    set(abiflags "")
    list(GET out 3 include)
  endif()
  set(${prefix}_MINOR "${minor}" PARENT_SCOPE)
  set(${prefix}_VERSION "${version}" PARENT_SCOPE)
  set(${prefix}_INCLUDE "${include}" PARENT_SCOPE)
  if(NOT impl STREQUAL "cpython")
    set(${prefix}_WHY "it is ${impl} ${version}, not CPython" PARENT_SCOPE)
  elseif(NOT abiflags STREQUAL "")
    set(${prefix}_WHY "it is a CPython ${version} build with ABI flags '${abiflags}' (debug or free-threaded)" PARENT_SCOPE)
  elseif(NOT minor IN_LIST MEMWATCH_SUPPORTED_PYTHON_VERSIONS)
    set(${prefix}_WHY "it is CPython ${version}; memwatch knows the internals of ${MEMWATCH_SUPPORTED_PYTHON_VERSIONS} only" PARENT_SCOPE)
  elseif(NOT EXISTS "${include}/Python.h" OR NOT EXISTS "${include}/internal/pycore_frame.h")
    set(${prefix}_WHY "it is CPython ${version} without its headers in ${include} (install python${minor}-dev)" PARENT_SCOPE)
  else()
    set(${prefix}_OK TRUE PARENT_SCOPE)
  endif()
endfunction()

if(MEMWATCH_PYTHONS)
  set(_mw_candidates ${MEMWATCH_PYTHONS})
  set(_mw_explicit TRUE)
else()
  set(_mw_explicit FALSE)
  set(_mw_candidates /usr/bin/python3)
  foreach(minor ${MEMWATCH_SUPPORTED_PYTHON_VERSIONS})
    list(APPEND _mw_candidates /usr/bin/python${minor} /usr/local/bin/python${minor})
    find_program(_mw_on_path NAMES python${minor} NO_CACHE)
    if(_mw_on_path)
      list(APPEND _mw_candidates ${_mw_on_path})
    endif()
    unset(_mw_on_path)
  endforeach()
  if(DEFINED ENV{PYENV_ROOT})
    set(_mw_pyenv "$ENV{PYENV_ROOT}")
  else()
    set(_mw_pyenv "$ENV{HOME}/.pyenv")
  endif()
  file(GLOB _mw_pyenv_pythons LIST_DIRECTORIES false "${_mw_pyenv}/versions/3.*/bin/python3")
  list(SORT _mw_pyenv_pythons COMPARE NATURAL)
  list(APPEND _mw_candidates ${_mw_pyenv_pythons})
endif()

set(MEMWATCH_PYTHON_VERSIONS "")
set(MEMWATCH_TEST_PYTHON "")
set(_mw_seen "")
foreach(exe ${_mw_candidates})
  if(NOT EXISTS "${exe}")
    if(_mw_explicit)
      message(FATAL_ERROR "memwatch: MEMWATCH_PYTHONS names '${exe}', which does not exist")
    endif()
    continue()
  endif()
  get_filename_component(real "${exe}" REALPATH)
  if(real IN_LIST _mw_seen)
    continue()
  endif()
  list(APPEND _mw_seen "${real}")
  _mw_probe_python("${exe}" _mw)
  if(NOT _mw_OK)
    if(_mw_explicit)
      message(FATAL_ERROR "memwatch: cannot build for '${exe}': ${_mw_WHY}")
    endif()
    continue()
  endif()
  if(_mw_MINOR IN_LIST MEMWATCH_PYTHON_VERSIONS)
    continue()   # the first one found for a minor version is built for
  endif()
  string(REPLACE "." "_" id "${_mw_MINOR}")
  list(APPEND MEMWATCH_PYTHON_VERSIONS ${_mw_MINOR})
  set(MEMWATCH_PYTHON_${id} "${exe}")
  set(MEMWATCH_PYTHON_${id}_INCLUDE "${_mw_INCLUDE}")
  if(NOT MEMWATCH_TEST_PYTHON)
    set(MEMWATCH_TEST_PYTHON "${exe}")
  endif()
  message(STATUS "memwatch: building for CPython ${_mw_MINOR} (${exe}, ${_mw_VERSION})")
endforeach()

if(NOT MEMWATCH_PYTHON_VERSIONS)
  string(REPLACE ";" ", " _mw_list "${MEMWATCH_SUPPORTED_PYTHON_VERSIONS}")
  message(FATAL_ERROR "memwatch: no supported CPython (${_mw_list}) with its headers was found. "
    "Install python3.11-dev (apt-get install python3.11-dev), or name an interpreter with "
    "-DMEMWATCH_PYTHONS=/path/to/python3.12")
endif()
list(SORT MEMWATCH_PYTHON_VERSIONS COMPARE NATURAL)
