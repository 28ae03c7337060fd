//! Progress bars on stderr, one look for every command. A leaf.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar of `len` steps drawn on stderr (hidden when stderr is not a
/// terminal) with `template` (indicatif's syntax: `{bar:40}`, `{pos}`,
/// `{len}`, `{per_sec}`, `{eta}`, `{msg}`). A template indicatif refuses
/// falls back to its default bar.
pub fn bar(len: Option<u64>, template: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
    bar.set_style(style(template));
    bar
}

/// The style of [`bar`], for a bar drawn somewhere else.
pub fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}
