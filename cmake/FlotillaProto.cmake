# flotilla_proto_library(NAME PROTOS...) : compiles .proto files given relative
# to the current source dir into a library. Generated headers live under the
# build tree at the same relative path as the .proto from the project root, so
# code includes them as "core/api/types.pb.h". Generated code builds without
# the project's warning flags.
function(flotilla_proto_library name)
  set(srcs)
  file(RELATIVE_PATH rel_dir ${PROJECT_SOURCE_DIR} ${CMAKE_CURRENT_SOURCE_DIR})
  foreach(proto ${ARGN})
    get_filename_component(base ${proto} NAME_WE)
    set(out_cc ${PROJECT_BINARY_DIR}/${rel_dir}/${base}.pb.cc)
    set(out_h ${PROJECT_BINARY_DIR}/${rel_dir}/${base}.pb.h)
    add_custom_command(
      OUTPUT ${out_cc} ${out_h}
      COMMAND protobuf::protoc
        --cpp_out=${PROJECT_BINARY_DIR}
        -I ${PROJECT_SOURCE_DIR}
        ${rel_dir}/${proto}
      WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
      DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/${proto} protobuf::protoc
      COMMENT "protoc ${rel_dir}/${proto}"
      VERBATIM)
    list(APPEND srcs ${out_cc} ${out_h})
  endforeach()
  add_library(${name} STATIC ${srcs})
  target_link_libraries(${name} PUBLIC flotilla_options protobuf::libprotobuf)
endfunction()
