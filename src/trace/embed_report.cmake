# cmake -DINPUT=report.html -DOUTPUT=report_template.c -P embed_report.cmake
# Turns the report's HTML template into a C byte array (no external tools), with the data
# marker taken out and its position kept, so that the writer splices the JSON in there.
set(MARKER "/*MW_REPORT_DATA*/")
file(READ ${INPUT} MW_TEXT)
string(FIND "${MW_TEXT}" "${MARKER}" MW_AT)
if(MW_AT LESS 0)
  message(FATAL_ERROR "${INPUT}: no ${MARKER} marker")
endif()
string(FIND "${MW_TEXT}" "${MARKER}" MW_AT_LAST REVERSE)
if(NOT MW_AT EQUAL MW_AT_LAST)
  message(FATAL_ERROR "${INPUT}: the ${MARKER} marker appears more than once")
endif()
# The file as hex, so that bytes (not CMake's list or escape rules) are what gets embedded.
file(READ ${INPUT} MW_HEX HEX)
string(LENGTH "${MARKER}" MW_MARKER_LEN)
math(EXPR MW_HEX_AT "${MW_AT} * 2")
math(EXPR MW_HEX_AFTER "(${MW_AT} + ${MW_MARKER_LEN}) * 2")
string(SUBSTRING "${MW_HEX}" 0 ${MW_HEX_AT} MW_HEX_BEFORE)
string(SUBSTRING "${MW_HEX}" ${MW_HEX_AFTER} -1 MW_HEX_REST)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," MW_BYTES "${MW_HEX_BEFORE}${MW_HEX_REST}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n    "
       MW_BYTES "${MW_BYTES}")
file(WRITE ${OUTPUT}
"/* Generated from src/trace/report.html by src/trace/embed_report.cmake: do not edit. */
#include \"report_template.h\"

const char mw_report_template[] = {
    ${MW_BYTES}
    0x00
};

const size_t mw_report_template_data_at = ${MW_AT};
")
