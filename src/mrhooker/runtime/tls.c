/* tls.c (target side): every thread-local variable of the target side, in one place.
 *
 * They are all initial-exec TLS: reached with one instruction, no call and no allocation, so they are usable from
 * allocator hooks, signal handlers and the lookups made before any original is known (global-dynamic TLS goes
 * through __tls_get_addr, which may allocate: a hooked malloc, inside itself).
 *
 * Hazard: a library with initial-exec TLS that is loaded after the program started (an attach's dlopen) is given
 * its block from glibc's spare static TLS (~1.5 KB, the same for every program), and never gives it back, even
 * once it is inert. Each attach of another build (other -e sets, other scripts) took ~420 bytes: the fourth
 * failed ("cannot allocate memory in static TLS block"). Idea: an attach build doesn't define these variables; it
 * takes them from libmrhooker-tls-KEY.so (this file alone, KEY the runtime's sources and compiler: the layout),
 * found by its soname. glibc loads a soname once per process, so every later attach build shares the first one's
 * block. Sharing is safe because one build at a time is attached (attach.c, other_attached), and a detach leaves
 * no thread inside the runtime (depth 0 everywhere).
 * (mrh_attached_hook_side is here for the same reason.) A launched build (LD_PRELOAD) links them in, hidden: builds nested in one process (a program run by mrhooker
 * under `mrhooker trace -f`) each keep their own depth, as each records or hooks the calls of the other's hooks.
 */
#include "preload.h"

#ifdef MRH_TLS_LIBRARY
#define MRH_TLS_DEFINITION __attribute__((visibility("default"), tls_model("initial-exec")))
#else
#define MRH_TLS_DEFINITION __attribute__((visibility("hidden"), tls_model("initial-exec")))
#endif

__thread mrh_thread mrh_tls MRH_TLS_DEFINITION;
__thread const void *mrh_entry_caller MRH_TLS_DEFINITION;
__thread int mrh_resolving MRH_TLS_DEFINITION;
__thread int mrh_start_gave_up MRH_TLS_DEFINITION;
__thread uint32_t mrh_my_tid MRH_TLS_DEFINITION;
__thread uint32_t mrh_my_tid_pid MRH_TLS_DEFINITION;
__thread int mrh_forking MRH_TLS_DEFINITION;

/* And what else attach builds share: the hook side the first of them with hooks started, whose interpreter the
 * later ones' scripts run in, and the build whose script it runs now (preload.c, load_hook_side; pyrt.c,
 * mrh_hook_restart). */
#ifdef MRH_TLS_LIBRARY
#define MRH_SHARED_DEFINITION __attribute__((visibility("default")))
#else
#define MRH_SHARED_DEFINITION __attribute__((visibility("hidden")))
#endif
MRH_SHARED_DEFINITION void *mrh_attached_hook_side;
MRH_SHARED_DEFINITION const void *mrh_hook_side_owner;
