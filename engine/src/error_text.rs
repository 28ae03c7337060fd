//! How an error reads: one line with its causes, and the exit code of a
//! command that failed. A leaf: every layer may use it, it uses nothing of
//! provenant.

use std::process::ExitCode;

/// An error and its causes on one line, leaving out a cause whose text the
/// line already holds (database errors often repeat their source).
pub fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// Prints a command's error with its causes on stderr; 0 on success, 1 on
/// error.
pub fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_join_on_one_line_without_repeating_themselves() {
        let e = anyhow::anyhow!("connection refused")
            .context("error connecting: connection refused")
            .context("cannot open the log");
        assert_eq!(
            error_text(&e),
            "cannot open the log: error connecting: connection refused"
        );
    }
}
