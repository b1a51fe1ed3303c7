# cmake -DINPUT=trace.sql -DNAME=mw_trace_schema -DTEMPLATE=schema.c.in -DOUTPUT=schema.c \
#       -P embed_schema.cmake
# Turns the schema into a C byte array (no external tools) and takes its version from the
# `PRAGMA user_version = N;` line, so that the .sql file stays the only source of both.
file(READ ${INPUT} MW_SCHEMA_HEX HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," MW_SCHEMA_BYTES "${MW_SCHEMA_HEX}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n    "
       MW_SCHEMA_BYTES "${MW_SCHEMA_BYTES}")
file(READ ${INPUT} MW_SCHEMA_TEXT)
string(REGEX MATCH "\nPRAGMA user_version = ([0-9]+);" _mw_match "${MW_SCHEMA_TEXT}")
if(NOT _mw_match)
  message(FATAL_ERROR "${INPUT}: no 'PRAGMA user_version = N;' line")
endif()
set(MW_SCHEMA_VERSION ${CMAKE_MATCH_1})
set(MW_SCHEMA_NAME ${NAME})
get_filename_component(MW_SCHEMA_FILE ${INPUT} NAME)
configure_file(${TEMPLATE} ${OUTPUT} @ONLY)
