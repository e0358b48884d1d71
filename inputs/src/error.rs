//! Why an input could not be found or opened; each variant names the argument, file or URL,
//! and its cause is the `source()`.

use std::path::PathBuf;

use gespann_common::FormatError;

/// Any cause, as a source.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("no recordings given: pass files, globs, directories or URLs (see `--help`)")]
    NoInputs,
    #[error("`{pattern}` matches no file")]
    NoMatch { pattern: String },
    #[error("`{pattern}` is not a valid glob")]
    BadGlob {
        pattern: String,
        #[source]
        cause: glob::PatternError,
    },
    #[error("directory `{}` holds no `.parquet` file", path.display())]
    EmptyDir { path: PathBuf },
    #[error("cannot read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        cause: std::io::Error,
    },
    /// The file or object is not a recording this version can read; the message names it.
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("`{url}` is not a location gespann reads (files, s3://, gs://, az://, http(s)://)")]
    BadUrl {
        url: String,
        #[source]
        cause: Cause,
    },
    /// The object store refused or failed (no such bucket, bad credentials, unreachable).
    #[error("cannot {what} `{url}`")]
    Store {
        what: &'static str,
        url: String,
        #[source]
        cause: StoreCause,
    },
    #[error("`{url}` names no object, and no `.parquet` object is under it")]
    NoObjects { url: String },
}

/// An object store's error as a cause: one line, said once. `object_store` errors print their
/// whole chain in their own message (and return it as their source too), and an S3 error
/// carries the XML body of the reply; this keeps the deepest cause, with an S3 reply reduced to
/// its status, `<Code>` and `<Message>`. It is the end of the chain.
#[derive(Debug)]
pub struct StoreCause(pub object_store::Error);

impl std::fmt::Display for StoreCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut deepest: &dyn std::error::Error = &self.0;
        while let Some(s) = deepest.source() {
            deepest = s;
        }
        let text = deepest.to_string();
        let between = |open: &str, close: &str| {
            let start = text.find(open)? + open.len();
            let len = text[start..].find(close)?;
            Some(text[start..start + len].to_owned())
        };
        let text = match (between("<Code>", "</Code>"), between("<Message>", "</Message>")) {
            (Some(code), message) => {
                let head = text[..text.find('<').unwrap_or(text.len())].trim_end().trim_end_matches(':');
                match message {
                    Some(m) => format!("{head}: {code} ({m})"),
                    None => format!("{head}: {code}"),
                }
            }
            _ => text,
        };
        f.write_str(&text.split_whitespace().collect::<Vec<_>>().join(" "))
    }
}

impl std::error::Error for StoreCause {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_s3_error_is_one_line_with_its_status_code_and_message() {
        let body = "Server returned non-2xx status code: 404 Not Found: <?xml version=\"1.0\"?>\n<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>";
        let e = StoreCause(object_store::Error::Generic { store: "S3", source: body.into() });
        assert_eq!(
            e.to_string(),
            "Server returned non-2xx status code: 404 Not Found: NoSuchBucket (The specified bucket does not exist)"
        );
        let plain = StoreCause(object_store::Error::Generic { store: "S3", source: "connection\nrefused".into() });
        assert_eq!(plain.to_string(), "connection refused");
        assert!(std::error::Error::source(&e).is_none());
    }
}
