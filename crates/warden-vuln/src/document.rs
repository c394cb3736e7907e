//! Reading a scanner's JSON document, with errors that name the file, the position and the
//! JSON path of what is wrong: what every parser shares.

use crate::ParseError;

/// A JSON syntax error as one line naming the file and the position.
pub(crate) fn json_error(file: &str, e: &serde_json::Error) -> ParseError {
    ParseError(format!(
        "{file}: not JSON at line {} column {}: {}",
        e.line(),
        e.column(),
        without_position(&e.to_string())
    ))
}

/// serde_json's message without its trailing " at line L column C" (said once, up front).
fn without_position(message: &str) -> &str {
    let line = message.lines().next().unwrap_or_default();
    match line.rfind(" at line ") {
        Some(at) => line.get(..at).unwrap_or(line),
        None => line,
    }
}

/// Deserializes a scanner's document, with an error naming the file, the position and the
/// JSON path of what is wrong. The path is tracked only to explain a failure: a document that
/// reads is read once without it (tracking allocates a segment for every key, which doubled
/// the time of a 100,000-finding import).
pub(crate) fn read<T: serde::de::DeserializeOwned>(
    file: &str,
    what: &str,
    text: &str,
) -> Result<T, ParseError> {
    if let Ok(value) = serde_json::from_str(text) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let inner = e.inner();
        let path = e.path().to_string();
        let at = if path == "." {
            String::new()
        } else {
            format!(" (`{path}`)")
        };
        ParseError(format!(
            "{file}: not {what} at line {} column {}{at}: {}",
            inner.line(),
            inner.column(),
            without_position(&inner.to_string())
        ))
    })?;
    de.end().map_err(|e| json_error(file, &e))?;
    Ok(value)
}
