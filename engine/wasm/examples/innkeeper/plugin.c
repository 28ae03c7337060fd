// wasm-innkeeper: serves drinks to thirsty NPCs.
//
// Condition `is_thirsty`: about one NPC in three, drawn from the call's
// seeded randomness (the same draw when the call is replayed); never an NPC
// whose state says `"asleep":true`.
// Effect `serve_drink`: counts the drinks served to the NPC in the plugin's
// own session flag `drinks:<npc_id>` (read, then written) and returns
// `{"drink": <params.drink>, "drinks": <count>}`.
#include "common.h"

bool exports_provenant_plugin_conditions_evaluate(
    plugin_string_t *name, exports_provenant_plugin_conditions_json_t *params, bool *ret,
    plugin_string_t *err) {
    if (!is(name, "is_thirsty")) {
        plugin_string_dup(err, "no such condition");
        return false;
    }
    provenant_plugin_call_json_t npc;
    if (provenant_plugin_call_npc(&npc) && contains(&npc, "\"asleep\":true")) {
        *ret = false;
        return true;
    }
    *ret = provenant_plugin_call_random_u64() % 3 == 0;
    return true;
}

bool exports_provenant_plugin_effects_apply(
    plugin_string_t *name, exports_provenant_plugin_effects_json_t *params,
    exports_provenant_plugin_effects_json_t *ret, plugin_string_t *err) {
    if (!is(name, "serve_drink")) {
        plugin_string_dup(err, "no such effect");
        return false;
    }
    char npc_id[72] = "someone";
    provenant_plugin_call_json_t npc;
    if (provenant_plugin_call_npc(&npc)) string_after(&npc, "\"npc_id\":\"", npc_id, sizeof npc_id);
    out_t key = {0};
    put(&key, "drinks:");
    put(&key, npc_id);
    plugin_string_t flag = text(key.buf);

    provenant_plugin_session_read_option_json_t served;
    provenant_plugin_session_read_denied_t read_denied;
    if (!provenant_plugin_session_read_get_session_flag(&flag, &served, &read_denied)) {
        plugin_string_dup(err, "cannot read its drinks flag");
        return false;
    }
    long drinks = (served.is_some ? number(&served.val) : 0) + 1;

    out_t value = {0};
    put_long(&value, drinks);
    plugin_string_t json = text(value.buf);
    bool written = false;
    provenant_plugin_session_write_denied_t write_denied;
    if (!provenant_plugin_session_write_set_session_flag(&flag, &json, &written, &write_denied) || !written) {
        plugin_string_dup(err, "cannot write its drinks flag");
        return false;
    }

    char drink[32] = "ale";
    string_after(params, "\"drink\":\"", drink, sizeof drink);
    out_t out = {0};
    put(&out, "{\"drink\":\"");
    put(&out, drink);
    put(&out, "\",\"drinks\":");
    put_long(&out, drinks);
    put(&out, "}");
    plugin_string_dup(ret, out.buf);
    return true;
}
