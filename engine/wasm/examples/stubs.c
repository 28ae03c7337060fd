// The exports an example does not implement: each fails with what it is.
// Weak definitions, linked into every example; an example's own (strong)
// definitions take their place.
#include "common.h"

// What a plugin does not implement fails with its name. An example
// overrides the ones it has (these are weak definitions).
__attribute__((weak)) bool exports_provenant_plugin_conditions_evaluate(
    plugin_string_t *name, exports_provenant_plugin_conditions_json_t *params, bool *ret,
    plugin_string_t *err) {
    plugin_string_dup(err, "this plugin has no conditions");
    return false;
}

__attribute__((weak)) bool exports_provenant_plugin_effects_apply(
    plugin_string_t *name, exports_provenant_plugin_effects_json_t *params,
    exports_provenant_plugin_effects_json_t *ret, plugin_string_t *err) {
    plugin_string_dup(err, "this plugin has no effects");
    return false;
}

__attribute__((weak)) bool exports_provenant_plugin_handlers_handle(
    exports_provenant_plugin_handlers_json_t *event, plugin_string_t *err) {
    plugin_string_dup(err, "this plugin handles no events");
    return false;
}

__attribute__((weak)) bool exports_provenant_plugin_providers_provide(
    plugin_string_t *name, exports_provenant_plugin_providers_json_t *ret, plugin_string_t *err) {
    plugin_string_dup(err, "this plugin provides no simulation config");
    return false;
}
