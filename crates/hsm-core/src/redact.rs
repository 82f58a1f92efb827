//! Configuration errors that never show a value. Configurations hold secrets (symmetric keys,
//! PINs, hierarchy authorizations, policy keys), and a TOML parser's message quotes the line it
//! stopped at: a missing quote after `symmetric_key = "` would print the key. Every
//! configuration error of this project (the library's, hsmctl's, the C ABI's, the emulator's)
//! goes through here: [`toml_error`] for a document that does not parse, [`message`] for a
//! value that does not deserialize.

/// What a hidden value is replaced with.
pub(crate) const HIDDEN: &str = "<hidden>";

/// A TOML syntax error in `text`, as ``line L, column C: REASON: `KEY = <hidden>` ``: where and
/// why, and the line it stopped at with its value hidden ([`line`](fn@line)).
pub fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let reason = message(e.message().trim_end());
    let Some(span) = e.span() else {
        return reason;
    };
    let mut start = span.start.min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line_no = text[..start].matches('\n').count() + 1;
    let column = text[line_start..start].chars().count() + 1;
    format!(
        "line {line_no}, column {column}: {reason}: `{}`",
        line(&text[line_start..line_end])
    )
}

/// One line of a TOML document safe to show: a `key = value` line keeps its (bare) key and
/// hides the value, a table header (`[x509]`, `[[enrollment]]`) stays, anything else (a
/// comment, a continued string, a stray value) is hidden whole.
pub fn line(text: &str) -> String {
    let t = text.trim();
    if t.is_empty() {
        return String::new();
    }
    if t.starts_with('[') && t.chars().all(|c| is_key_char(c) || matches!(c, '[' | ']')) {
        return t.to_string();
    }
    match t.split_once('=') {
        Some((key, _)) if !key.trim().is_empty() && key.chars().all(is_key_char) => {
            format!("{} = {HIDDEN}", key.trim())
        }
        _ => HIDDEN.to_string(),
    }
}

/// A character of a bare or dotted TOML key (quoted keys are hidden with their line).
fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ' ' | '\t')
}

/// A deserializer's message with the value it quotes hidden: serde says `invalid type:
/// string "…", expected …` and `invalid value: integer `…`, expected …`; what remains is the
/// kind of the value. The rest of the message (field and variant names) stays.
pub fn message(text: &str) -> String {
    const MARKERS: [&str; 2] = ["invalid type: ", "invalid value: "];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((at, marker)) = MARKERS
        .iter()
        .filter_map(|m| rest.find(m).map(|at| (at, *m)))
        .min_by_key(|(at, _)| *at)
    {
        out.push_str(&rest[..at + marker.len()]);
        let after = &rest[at + marker.len()..];
        let end = after.find(", expected").unwrap_or(after.len());
        // The kind of the value: the words before its quoted text (`string`, `integer`,
        // `floating point`, `character`), or the whole description when it quotes nothing.
        let unexpected = &after[..end];
        match unexpected.find(['"', '`', '\'']) {
            Some(q) => {
                out.push_str(unexpected[..q].trim_end());
                out.push(' ');
                out.push_str(HIDDEN);
            }
            None if unexpected.chars().any(|c| c.is_ascii_digit()) => {
                out.push_str(HIDDEN);
            }
            None => out.push_str(unexpected),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "c2VjcmV0LWtleS1mb3ItdGVzdHM=";

    fn syntax(text: &str) -> String {
        let e = text.parse::<toml::Table>().unwrap_err();
        toml_error(text, &e)
    }

    #[test]
    fn a_missing_quote_shows_the_key_and_position_not_the_value() {
        let doc = format!("[symmetric_key]\nbackend = \"file\"\nsymmetric_key = \"{SECRET}\nregistration_id = \"d\"\n");
        let raw = doc.parse::<toml::Table>().unwrap_err().to_string();
        assert!(raw.contains(SECRET), "the parser's own message quotes the line: {raw}");
        let e = syntax(&doc);
        assert!(!e.contains(SECRET), "{e}");
        assert!(e.starts_with("line 3, column "), "{e}");
        assert!(e.contains("`symmetric_key = <hidden>`"), "{e}");
    }

    #[test]
    fn other_lines_are_hidden_whole_and_headers_stay() {
        assert_eq!(line("[x509]"), "[x509]");
        assert_eq!(line("  [[enrollment]] "), "[[enrollment]]");
        assert_eq!(line("[x509 = \"abc\""), "<hidden>");
        assert_eq!(line(&format!("\"{SECRET}\"")), "<hidden>");
        assert_eq!(line(&format!("# {SECRET}")), "<hidden>");
        assert_eq!(line(&format!("\"quoted key\" = \"{SECRET}\"")), "<hidden>");
        assert_eq!(
            line(&format!("tpm.owner_auth = {SECRET}=")),
            "tpm.owner_auth = <hidden>"
        );
        assert_eq!(line(""), "");
        let e = syntax(&format!("[x509]\n{SECRET}\n"));
        assert!(!e.contains(SECRET) && e.contains("line 2"), "{e}");
    }

    #[test]
    fn a_multibyte_line_is_cut_at_a_character_boundary() {
        let e = syntax("pin = \"é\u{7}\"\n");
        assert!(e.starts_with("line 1, column "), "{e}");
        assert!(e.contains("`pin = <hidden>`"), "{e}");
    }

    /// The property of the fuzz target `config_redaction`, over hand-picked surroundings of a
    /// secret line: no error of the library's configuration shows the secret.
    #[test]
    fn no_surrounding_text_brings_the_secret_into_an_error() {
        let before = [
            "",
            "[x509]",
            "[x509",
            "[[x]]",
            "a = \"\"\"",
            "a = '''",
            "a = [",
            "a = {",
            "a = \"",
            "\"k",
            "k.",
            "# c",
            "[symmetric_key]\nbackend = \"file\"",
            "a = 1\na = 2",
        ];
        let after = [
            "", "\"", "\"\n", "\" x", "\"\"\"", "\\", "\\u12", "\n[x509", "\"\n\"", "\u{7}", "é", "\"]", "\"}",
        ];
        for b in before {
            for a in after {
                let doc = format!("{b}\nsymmetric_key = \"{SECRET}{a}");
                if let Err(e) = crate::config::Config::from_toml(&doc, "f.toml", std::path::Path::new("")) {
                    let e = e.to_string();
                    assert!(!e.contains(SECRET), "{doc:?}: {e}");
                }
            }
        }
    }

    #[test]
    fn a_deserializer_message_keeps_the_kind_and_hides_the_value() {
        assert_eq!(
            message(&format!("invalid type: string \"{SECRET}\", expected u32")),
            "invalid type: string <hidden>, expected u32"
        );
        assert_eq!(
            message("invalid value: integer `1234`, expected a string for pin"),
            "invalid value: integer <hidden>, expected a string for pin"
        );
        assert_eq!(
            message("invalid type: sequence, expected a string"),
            "invalid type: sequence, expected a string"
        );
        assert_eq!(
            message("invalid value: 4711, expected x"),
            "invalid value: <hidden>, expected x"
        );
        assert_eq!(
            message("unknown field `pth`, expected `path`"),
            "unknown field `pth`, expected `path`"
        );
        let two = message("invalid type: string \"a\", then invalid value: string \"b\"");
        assert!(!two.contains("\"a\"") && !two.contains("\"b\""), "{two}");
    }
}
