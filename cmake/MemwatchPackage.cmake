# `cpack -G DEB` in the build directory: memwatch_<version>_<arch>.deb, installed with
# `apt install ./memwatch_*.deb`. It holds what `cmake --install` installs: the memwatch
# executable, one injected library per CPython version built for (lib/memwatch), the man
# pages and the bash completion. The tree is relocatable: memwatch finds its libraries
# relative to its own executable (cli/interpreter.c), so the package's files work
# wherever they are unpacked (tests/cli/package.bats unpacks it with dpkg-deb -x).
set(CPACK_PACKAGE_NAME memwatch)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "who changed this memory, when, and from what to what: a write tracer for Python")
set(CPACK_PACKAGE_DESCRIPTION
  "memwatch trace runs a Python script as python3 would and records every write to the
buffers the script watches (numpy arrays, torch tensors, bytearrays, ctypes, raw
memory) with the Python line, function and thread that wrote, into an SQLite trace;
memwatch query, diff and report read it back. CPython 3.11, 3.12 and 3.13.")
set(CPACK_PACKAGE_CONTACT "memwatch developers <memwatch@localhost>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# What memwatch needs at run time: the C library (symbols up to GLIBC_2.34), SQLite
# (sqlite3_hard_heap_limit64: 3.31), and an interpreter to trace. Declared by hand: the
# injected libraries resolve Python's C API from the interpreter they are loaded into,
# which dpkg-shlibdeps cannot follow.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libc6 (>= 2.34), libsqlite3-0 (>= 3.31), python3 (>= 3.11)")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "python3-numpy")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "bash-completion, python3-torch, sqlite3")
set(CPACK_GENERATOR DEB)
include(CPack)
