// wasm-gossip: spreads rumors.
//
// Effect `spread_rumor`: counts the rumors in the plugin's own storage
// (`rumors`), emits each as the event `plugin:wasm-gossip:rumor`
// (`{"topic": <params.topic>, "count": <n>}`), logs a line, and returns
// `{"rumors": <n>}`.
#include "common.h"

bool exports_provenant_plugin_effects_apply(
    plugin_string_t *name, exports_provenant_plugin_effects_json_t *params,
    exports_provenant_plugin_effects_json_t *ret, plugin_string_t *err) {
    if (!is(name, "spread_rumor")) {
        plugin_string_dup(err, "no such effect");
        return false;
    }
    plugin_string_t key = text("rumors");
    provenant_plugin_storage_option_json_t stored;
    provenant_plugin_storage_denied_t denied;
    if (!provenant_plugin_storage_get(&key, &stored, &denied)) {
        plugin_string_dup(err, "cannot read its storage");
        return false;
    }
    long count = (stored.is_some ? number(&stored.val) : 0) + 1;
    out_t value = {0};
    put_long(&value, count);
    plugin_string_t json = text(value.buf);
    bool stored_ok = false;
    if (!provenant_plugin_storage_set(&key, &json, &stored_ok, &denied) || !stored_ok) {
        plugin_string_dup(err, "cannot write its storage");
        return false;
    }

    char topic[48] = "nothing in particular";
    string_after(params, "\"topic\":\"", topic, sizeof topic);
    out_t payload = {0};
    put(&payload, "{\"count\":");
    put_long(&payload, count);
    put(&payload, ",\"topic\":\"");
    put(&payload, topic);
    put(&payload, "\"}");
    plugin_string_t event = text("rumor"), body = text(payload.buf);
    bool emitted = false;
    provenant_plugin_events_denied_t emit_denied;
    if (!provenant_plugin_events_emit(&event, &body, &emitted, &emit_denied)) {
        plugin_string_dup(err, "cannot emit its rumor");
        return false;
    }

    out_t line = {0};
    put(&line, "rumor ");
    put_long(&line, count);
    put(&line, " about ");
    put(&line, topic);
    plugin_string_t message = text(line.buf);
    provenant_plugin_log_log(PROVENANT_PLUGIN_LOG_LEVEL_INFO, &message);

    out_t out = {0};
    put(&out, "{\"rumors\":");
    put_long(&out, count);
    put(&out, "}");
    plugin_string_dup(ret, out.buf);
    return true;
}
