// Helpers the example plugins share, on top of the C bindings wit-bindgen
// generates for ../wit/plugin.wit (plugin.h). Every call runs in a fresh
// instance, so nothing here bothers to free what it allocates: the whole
// memory goes when the call returns.
#ifndef PROVENANT_EXAMPLES_COMMON_H
#define PROVENANT_EXAMPLES_COMMON_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

// A string to pass to an import (borrowed: imports do not take it).
static inline plugin_string_t text(const char *s) {
    plugin_string_t r;
    plugin_string_set(&r, s);
    return r;
}

// Whether `s` is the NUL-terminated `lit`.
static inline bool is(const plugin_string_t *s, const char *lit) {
    size_t n = strlen(lit);
    return s->len == n && memcmp(s->ptr, lit, n) == 0;
}

// Whether `s` contains `needle`.
static inline bool contains(const plugin_string_t *s, const char *needle) {
    size_t n = strlen(needle);
    for (size_t i = 0; n <= s->len && i <= s->len - n; i++) {
        if (memcmp(s->ptr + i, needle, n) == 0) return true;
    }
    return false;
}

// The string after `key` (e.g. `"npc_id":"`) up to the next quote, into
// `out` (at most `size` - 1 bytes); false when `key` is not there.
static inline bool string_after(const plugin_string_t *s, const char *key, char *out, size_t size) {
    size_t n = strlen(key);
    for (size_t i = 0; n <= s->len && i <= s->len - n; i++) {
        if (memcmp(s->ptr + i, key, n) != 0) continue;
        size_t j = i + n, k = 0;
        while (j < s->len && s->ptr[j] != '"' && k + 1 < size) out[k++] = (char)s->ptr[j++];
        out[k] = '\0';
        return true;
    }
    return false;
}

// Text built up in a fixed buffer (no stdio: wasi-libc's would import WASI).
typedef struct {
    char buf[256];
    size_t len;
} out_t;

static inline void put(out_t *o, const char *s) {
    while (*s && o->len + 1 < sizeof o->buf) o->buf[o->len++] = *s++;
    o->buf[o->len] = '\0';
}

static inline void put_long(out_t *o, long n) {
    char digits[24];
    size_t k = 0;
    unsigned long u = n < 0 ? 0UL - (unsigned long)n : (unsigned long)n;
    do {
        digits[k++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (n < 0) put(o, "-");
    while (k) {
        char c[2] = {digits[--k], '\0'};
        put(o, c);
    }
}

// A JSON number the engine sent (e.g. a flag's value).
static inline long number(const plugin_string_t *s) {
    char buf[32];
    size_t n = s->len < sizeof buf - 1 ? s->len : sizeof buf - 1;
    memcpy(buf, s->ptr, n);
    buf[n] = '\0';
    return strtol(buf, NULL, 10);
}

#endif
