# BPF pipeline: vmlinux.h from the running kernel's BTF, each bpf/*.bpf.c compiled with clang for the
# bpf target (CO-RE), then `bpftool gen skeleton` into build/bpf/<name>.skel.h. The interface target
# riskgate_bpf_skeletons carries the include path and depends on every skeleton.

find_program(BPF_CLANG clang REQUIRED)
find_program(BPFTOOL bpftool PATHS /usr/sbin /sbin REQUIRED)

set(BPF_OUT_DIR ${CMAKE_BINARY_DIR}/bpf)
file(MAKE_DIRECTORY ${BPF_OUT_DIR})
set(VMLINUX_BTF /sys/kernel/btf/vmlinux CACHE FILEPATH "kernel BTF used to generate vmlinux.h")
if(NOT EXISTS ${VMLINUX_BTF})
  message(FATAL_ERROR "${VMLINUX_BTF} missing: riskgate needs a kernel built with CONFIG_DEBUG_INFO_BTF=y")
endif()

add_custom_command(OUTPUT ${BPF_OUT_DIR}/vmlinux.h
  COMMAND ${BPFTOOL} btf dump file ${VMLINUX_BTF} format c > ${BPF_OUT_DIR}/vmlinux.h.tmp
  COMMAND ${CMAKE_COMMAND} -E rename ${BPF_OUT_DIR}/vmlinux.h.tmp ${BPF_OUT_DIR}/vmlinux.h
  COMMENT "vmlinux.h from ${VMLINUX_BTF}")

execute_process(COMMAND uname -m OUTPUT_VARIABLE BPF_UNAME_M OUTPUT_STRIP_TRAILING_WHITESPACE)
string(REPLACE "x86_64" "x86" BPF_ARCH "${BPF_UNAME_M}")
string(REPLACE "aarch64" "arm64" BPF_ARCH "${BPF_ARCH}")

file(GLOB BPF_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/bpf/*.bpf.c)
file(GLOB BPF_HEADERS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/bpf/lib/*.h ${PROJECT_SOURCE_DIR}/include/riskgate/abi.h)
set(BPF_SKELETONS)
foreach(src IN LISTS BPF_SOURCES)
  get_filename_component(name ${src} NAME_WE)
  set(obj ${BPF_OUT_DIR}/${name}.bpf.o)
  set(skel ${BPF_OUT_DIR}/${name}.skel.h)
  add_custom_command(OUTPUT ${obj}
    COMMAND ${BPF_CLANG} -target bpf -g -O2 -Wall -Werror -D__TARGET_ARCH_${BPF_ARCH}
      -I${BPF_OUT_DIR} -I${PROJECT_SOURCE_DIR}/bpf -I${PROJECT_SOURCE_DIR}/include
      -c ${src} -o ${obj}
    DEPENDS ${src} ${BPF_HEADERS} ${BPF_OUT_DIR}/vmlinux.h
    COMMENT "BPF ${name}.bpf.c")
  add_custom_command(OUTPUT ${skel}
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${name} > ${skel}.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${skel}.tmp ${skel}
    DEPENDS ${obj}
    COMMENT "skeleton ${name}.skel.h")
  list(APPEND BPF_SKELETONS ${skel})
endforeach()

add_custom_target(riskgate_bpf_generated DEPENDS ${BPF_SKELETONS})
add_library(riskgate_bpf_skeletons INTERFACE)
target_include_directories(riskgate_bpf_skeletons SYSTEM INTERFACE ${BPF_OUT_DIR})
add_dependencies(riskgate_bpf_skeletons riskgate_bpf_generated)
