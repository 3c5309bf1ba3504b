# Writes OUT (a C++ source defining riskgate::version()) from `git describe` of SOURCE_DIR, at build
# time, touching OUT only when the text changes so an unchanged tree rebuilds nothing.
execute_process(COMMAND git describe --always --dirty --tags WORKING_DIRECTORY ${SOURCE_DIR}
  OUTPUT_VARIABLE described OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR described STREQUAL "")
  set(described "unknown")
endif()
set(text "#include <riskgate/common/version.h>\nconst char *riskgate::version() { return \"${PROJECT_VERSION}+${described}\"; }\n")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
endif()
if(NOT "${old}" STREQUAL "${text}")
  file(WRITE ${OUT} "${text}")
endif()
