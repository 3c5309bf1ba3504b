// One probe of the layering (tests/layering/check.cmake): compiled with the include roots of one
// module, it includes the header RG_PROBE_HEADER names.
#include RG_PROBE_HEADER
