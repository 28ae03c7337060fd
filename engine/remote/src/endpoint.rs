//! Where a remote plugin is served: `http://…`, `https://…` or
//! `nats:<subject>`.

use std::fmt;

/// A checked endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// The base URL operations are appended to (`{base}/evaluate-condition`),
    /// without a trailing `/`.
    Http(String),
    /// The subject requests are sent to.
    Nats(String),
}

impl Endpoint {
    /// Parses and checks `text`.
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        if let Some(subject) = text.strip_prefix("nats:") {
            let bad = subject.is_empty()
                || subject.starts_with('.')
                || subject.ends_with('.')
                || subject.contains("..")
                || subject
                    .chars()
                    .any(|c| c.is_whitespace() || c == '*' || c == '>' || c.is_control());
            if bad {
                return Err(format!(
                    "endpoint {text:?}: a NATS subject is tokens separated by '.', without spaces or wildcards"
                ));
            }
            return Ok(Endpoint::Nats(subject.to_owned()));
        }
        let url = url::Url::parse(text).map_err(|e| {
            format!("endpoint {text:?} is not http://…, https://… or nats:<subject>: {e}")
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!(
                "endpoint {text:?} is not http://…, https://… or nats:<subject>"
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "endpoint {text:?}: a base URL has no query or fragment (operations are appended to its path)"
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "endpoint {text:?} holds credentials: put a token in the environment and name it in token_env"
            ));
        }
        Ok(Endpoint::Http(
            url.as_str().trim_end_matches('/').to_owned(),
        ))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Http(base) => f.write_str(base),
            Endpoint::Nats(subject) => write!(f, "nats:{subject}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_http_https_or_a_nats_subject() {
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:8700/").unwrap(),
            Endpoint::Http("http://127.0.0.1:8700".into())
        );
        assert_eq!(
            Endpoint::parse("https://oracle.example/v1")
                .unwrap()
                .to_string(),
            "https://oracle.example/v1"
        );
        assert_eq!(
            Endpoint::parse("nats:behaviour.oracle").unwrap(),
            Endpoint::Nats("behaviour.oracle".into())
        );
        for bad in [
            "ftp://x",
            "oracle",
            "nats:",
            "nats:a.*",
            "nats:a b",
            "nats:a..b",
            "http://x/?q=1",
            "http://user:secret@x",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
        assert!(
            Endpoint::parse("http://user:secret@x")
                .unwrap_err()
                .contains("token_env")
        );
    }
}
