//! The host side of `wit/plugin.wit` (`provenant:plugin@0.1.0`), generated
//! by wasmtime: the capability interfaces' `Host` traits (implemented in
//! [`crate::capabilities`]) and their types. Every import may trap, so that
//! what a plugin passes the host that is not what the interface says (JSON
//! that is not JSON) stops the call with an error instead of being guessed
//! at.

wasmtime::component::bindgen!({
    path: "wit",
    world: "plugin",
    imports: { default: trappable },
});

/// The package every interface belongs to, as components name it.
pub const PACKAGE: &str = "provenant:plugin";
/// The interface version this engine provides.
pub const VERSION: &str = "0.1.0";
