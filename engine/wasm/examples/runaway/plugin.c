// wasm-runaway: a hostile example. Its condition `stuck` never returns; the
// sandbox stops it when the call's fuel runs out (recorded as a
// PluginCallFailed with `limit: fuel`), and the tick goes on.
#include "common.h"

bool exports_provenant_plugin_conditions_evaluate(
    plugin_string_t *name, exports_provenant_plugin_conditions_json_t *params, bool *ret,
    plugin_string_t *err) {
    volatile unsigned long spins = 0;
    for (;;) spins++;
}
