# Embeds text files into the binary as `riskgate::embedded::<name>` string_views (default.yaml ->
# riskgate::embedded::default_yaml), declared in include/riskgate/policy/embedded.h. The files must not
# contain the raw-string delimiter `)rg_embed"`.
function(riskgate_embed_files target)
  set(out ${CMAKE_BINARY_DIR}/generated/${target}.cpp)
  set(script ${PROJECT_SOURCE_DIR}/cmake/embed_generate.cmake)
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DOUT=${out} "-DFILES=${ARGN}" -P ${script}
    DEPENDS ${ARGN} ${script}
    COMMENT "embedding ${ARGN}")
  set(RISKGATE_EMBEDDED_SOURCE ${out} PARENT_SCOPE)
endfunction()
