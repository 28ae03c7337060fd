#!/usr/bin/env bash
# Builds the example plugins from their C source into components:
#   wit-bindgen c   the C bindings of ../wit/plugin.wit (provenant:plugin@0.1.0)
#   clang           wasm32-wasi, a reactor (no main) with wasi-libc's malloc:
#                   no WASI import is left in the module
#   wasm-tools      `component new`: the core module made a component
# and writes each example's digest into its manifest.json.
#
#   build.sh            rebuild the committed plugin.wasm files
#   build.sh --check    build into a scratch directory and fail unless each
#                       module is byte for byte the committed one (CI: the
#                       committed modules come from their source)
#   build.sh --install  first install what is missing: Debian's clang, lld,
#                       wasi-libc, libclang-rt-14-dev-wasm32, and (cargo
#                       install) wasm-tools and wit-bindgen-cli at the pinned
#                       versions
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
wit="$here/../wit"
examples=(innkeeper gossip runaway)
WASM_TOOLS_VERSION=1.254.2
WIT_BINDGEN_VERSION=0.60.0

mode=build
for arg in "$@"; do
    case "$arg" in
        --check) mode=check ;;
        --install) install=1 ;;
        *) echo "usage: $0 [--check] [--install]" >&2; exit 2 ;;
    esac
done

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

have_tools() {
    command -v clang >/dev/null && command -v wasm-ld >/dev/null &&
        [ -f /usr/lib/wasm32-wasi/libc.a ] &&
        ls /usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1 &&
        [ "$(wasm-tools --version 2>/dev/null | cut -d' ' -f2)" = "$WASM_TOOLS_VERSION" ] &&
        [ "$(wit-bindgen --version 2>/dev/null | cut -d' ' -f2)" = "$WIT_BINDGEN_VERSION" ]
}

if ! have_tools; then
    if [ -z "${install:-}" ]; then
        echo "missing tools: run $0 --install (Debian's clang, lld, wasi-libc, libclang-rt-14-dev-wasm32; wasm-tools $WASM_TOOLS_VERSION and wit-bindgen-cli $WIT_BINDGEN_VERSION from crates.io)" >&2
        exit 2
    fi
    if ! command -v clang >/dev/null || ! command -v wasm-ld >/dev/null || [ ! -f /usr/lib/wasm32-wasi/libc.a ] ||
        ! ls /usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1; then
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
            clang lld wasi-libc libclang-rt-14-dev-wasm32
    fi
    # Their own target directory: these builds are not the workspace's.
    export CARGO_TARGET_DIR="${WASM_TOOLS_TARGET_DIR:-/var/tmp/provenant-wasm-tools-target}"
    [ "$(wasm-tools --version 2>/dev/null | cut -d' ' -f2)" = "$WASM_TOOLS_VERSION" ] ||
        cargo install --locked --quiet "wasm-tools@$WASM_TOOLS_VERSION"
    [ "$(wit-bindgen --version 2>/dev/null | cut -d' ' -f2)" = "$WIT_BINDGEN_VERSION" ] ||
        cargo install --locked --quiet "wit-bindgen-cli@$WIT_BINDGEN_VERSION"
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
wit-bindgen c "$wit" --world plugin --out-dir "$scratch/gen" >/dev/null 2>&1

status=0
for ex in "${examples[@]}"; do
    src="$here/$ex"
    clang --target=wasm32-wasi --sysroot=/usr -I/usr/include/wasm32-wasi \
        -O2 -mexec-model=reactor -Wl,--no-entry -Wl,--strip-all \
        -Wall -Wextra -Werror -Wno-unused-parameter \
        -I "$scratch/gen" -I "$here" \
        "$src/plugin.c" "$here/stubs.c" "$scratch/gen/plugin.c" "$scratch/gen/plugin_component_type.o" \
        -o "$scratch/$ex.core.wasm"
    wasm-tools component new "$scratch/$ex.core.wasm" -o "$scratch/$ex.wasm"
    if wasm-tools component wit "$scratch/$ex.wasm" | grep -q 'import wasi:'; then
        echo "$ex: the component imports WASI" >&2
        exit 1
    fi
    digest="sha256:$(sha256sum "$scratch/$ex.wasm" | cut -d' ' -f1)"
    if [ "$mode" = check ]; then
        if cmp -s "$scratch/$ex.wasm" "$src/plugin.wasm" &&
            grep -q "\"digest\": \"$digest\"" "$src/manifest.json"; then
            echo "$ex: $digest, as committed"
        else
            echo "$ex: built $digest, which is not the committed plugin.wasm and manifest digest" >&2
            status=1
        fi
    else
        cp "$scratch/$ex.wasm" "$src/plugin.wasm"
        sed -i "s/\"digest\": \"[^\"]*\"/\"digest\": \"$digest\"/" "$src/manifest.json"
        echo "$ex: $digest"
    fi
done
exit "$status"
