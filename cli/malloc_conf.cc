// jemalloc's settings for the flotilla binary (linked when FLOTILLA_JEMALLOC
// is on), read once at start; MALLOC_CONF in the environment adds to them.
//
// thp:always asks the kernel for 2 MiB pages for jemalloc's heap (madvise,
// so it works where transparent huge pages are set to "madvise", Debian's
// default, and changes nothing where they are off). The large scenario's 1.8
// GiB of small objects, read in no order a cache or 4 KiB-page TLB could
// follow, then takes ~3-6% less CPU and ~87-95% fewer page faults for
// ~25-35 MB more peak memory (docs/scenarios.md).
extern "C" {
// NOLINTNEXTLINE: the name and type jemalloc looks for.
const char* malloc_conf = "thp:always,metadata_thp:always";
}
