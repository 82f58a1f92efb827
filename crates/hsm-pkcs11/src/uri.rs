//! PKCS#11 URIs (RFC 7512), parsed strictly.
//!
//! Every attribute of the RFC. Path attributes (separated by `;`): the token's `token`,
//! `manufacturer`, `serial`, `model` (C_GetTokenInfo); the library's `library-manufacturer`,
//! `library-description`, `library-version` (`M` or `M.N`, C_GetInfo); the slot's
//! `slot-description`, `slot-manufacturer`, `slot-id` (C_GetSlotInfo); the object's `object`,
//! `id` (bytes, percent-encoded), `type` (`private`, `public`, `cert`, `secret-key`, `data`).
//! Query attributes (separated by `&`): `module-path`, `module-name`, `pin-source` (a file
//! holding the PIN), `pin-value`.
//!
//! Vendor-specific attributes (any other name made of letters, digits, `-` and `_`, such as
//! `x-vendor-thing`) parse, and are treated as RFC 7512 asks of a consumer that does not
//! understand them: one in the path makes the URI match no token (selection fails with an error
//! naming it); one in the query is ignored (with a warning naming it, which also shows typos). A standard attribute in the wrong
//! component (`pin-source` in the path, `token` in the query), a repeated attribute, bad
//! percent-encoding and a bad value are errors that name the attribute.
//! [`Pkcs11Uri::to_token_string`] writes the URI back without `pin-value` (and without vendor
//! query attributes), so it can be handed out as an alias-key token.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hsm_core::{Error, Result};
use zeroize::Zeroizing;

/// The kind of object a URI names (`type=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectType {
    Private,
    Public,
    Cert,
    SecretKey,
    Data,
}

impl ObjectType {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::Private => "private",
            ObjectType::Public => "public",
            ObjectType::Cert => "cert",
            ObjectType::SecretKey => "secret-key",
            ObjectType::Data => "data",
        }
    }

    fn parse(v: &str) -> Result<Self> {
        Ok(match v {
            "private" => ObjectType::Private,
            "public" => ObjectType::Public,
            "cert" => ObjectType::Cert,
            "secret-key" => ObjectType::SecretKey,
            "data" => ObjectType::Data,
            other => {
                return Err(uri_error(
                    "type",
                    format!("unknown object type `{other}`; expected private, public, cert, secret-key or data"),
                ));
            }
        })
    }
}

/// A parsed PKCS#11 URI.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Pkcs11Uri {
    pub token: Option<String>,
    pub manufacturer: Option<String>,
    pub serial: Option<String>,
    pub model: Option<String>,
    pub slot_id: Option<u64>,
    pub slot_description: Option<String>,
    pub slot_manufacturer: Option<String>,
    pub library_manufacturer: Option<String>,
    pub library_description: Option<String>,
    /// `library-version=M[.N]`: (major, minor); a missing minor is 0.
    pub library_version: Option<(u8, u8)>,
    /// Vendor-specific path attributes, in order: (name, value as written, percent-encoded).
    pub vendor_path: Vec<(String, String)>,
    /// Vendor-specific query attributes: parsed and ignored; never written back.
    pub vendor_query: Vec<(String, String)>,
    pub object: Option<String>,
    pub id: Option<Vec<u8>>,
    pub object_type: Option<ObjectType>,
    pub module_path: Option<PathBuf>,
    pub module_name: Option<String>,
    pub pin_source: Option<String>,
    pub pin_value: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for Pkcs11Uri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never prints pin-value.
        f.write_str(&self.to_token_string())
    }
}

fn uri_error(attribute: &str, reason: impl Into<String>) -> Error {
    Error::parse(format!("PKCS#11 URI attribute `{attribute}`"), reason.into())
}

/// Query attributes whose value is a secret: never quoted in an error, in whole or in part.
const SECRET_ATTRIBUTES: [&str; 1] = ["pin-value"];

/// What an error may show of an attribute with no `=`: nothing when it may hold a PIN.
fn shown_name(attr: &str) -> &str {
    if attr.contains("pin") {
        "(not shown: it may hold a PIN)"
    } else {
        attr
    }
}

/// A query attribute written into the path (`object=k1&pin-value=1234` without `?`) would
/// become part of a label that is logged: refuse it, without quoting the value.
fn refuse_secret_in_path(name: &str, value: &str) -> Result<()> {
    let lower = value.to_ascii_lowercase();
    match ["pin-value", "pin-source"].into_iter().find(|q| lower.contains(q)) {
        Some(q) => Err(uri_error(
            name,
            format!(
                "the value contains `{q}`, a query attribute: the query starts with `?` \
                 (`pkcs11:...;object=NAME?{q}=...`); the value is not shown"
            ),
        )),
        None => Ok(()),
    }
}

/// The RFC 7512 path attributes.
const PATH_ATTRIBUTES: [&str; 13] = [
    "token",
    "manufacturer",
    "serial",
    "model",
    "library-manufacturer",
    "library-description",
    "library-version",
    "slot-description",
    "slot-manufacturer",
    "slot-id",
    "object",
    "id",
    "type",
];
/// The RFC 7512 query attributes.
const QUERY_ATTRIBUTES: [&str; 4] = ["module-path", "module-name", "pin-source", "pin-value"];

/// A vendor-specific attribute name: `1*(ALPHA / DIGIT / "-" / "_")` (RFC 7512 `pk11-v-attr-nm`).
fn check_vendor_name(name: &str, part: Part) -> Result<()> {
    let (this, other, sep) = match part {
        Part::Path => ("path", "query", "`;`"),
        Part::Query => ("query", "path", "`&`"),
    };
    if name.is_empty() {
        return Err(uri_error(name, format!("empty attribute name (stray {sep}?)")));
    }
    let known_elsewhere = match part {
        Part::Path => QUERY_ATTRIBUTES.contains(&name),
        Part::Query => PATH_ATTRIBUTES.contains(&name),
    };
    if known_elsewhere {
        return Err(uri_error(
            name,
            format!("a {other} attribute, given in the {this} (the query starts after `?`)"),
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(uri_error(
            name,
            format!(
                "not a {this} attribute of RFC 7512 (expected one of: {}), and `{}` cannot be in a vendor \
                 attribute name (letters, digits, `-`, `_`)",
                match part {
                    Part::Path => PATH_ATTRIBUTES.join(", "),
                    Part::Query => QUERY_ATTRIBUTES.join(", "),
                },
                c.escape_default()
            ),
        ));
    }
    Ok(())
}

/// `library-version`: `1*DIGIT [ "." 1*DIGIT ]`, each part a CK_VERSION byte.
fn parse_version(name: &str, text: &str) -> Result<(u8, u8)> {
    let number = |part: &str| -> Result<u8> {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(uri_error(
                name,
                format!("`{text}` is not `M` or `M.N` (decimal digits)"),
            ));
        }
        part.parse::<u8>()
            .map_err(|_| uri_error(name, format!("`{part}` in `{text}` is larger than 255")))
    };
    match text.split_once('.') {
        Some((major, minor)) => Ok((number(major)?, number(minor)?)),
        None => Ok((number(text)?, 0)),
    }
}

impl Pkcs11Uri {
    /// Parse a `pkcs11:` URI.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let rest = text
            .strip_prefix("pkcs11:")
            .ok_or_else(|| Error::parse("PKCS#11 URI", "it must start with `pkcs11:`"))?;
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        if path.contains('#') || query.is_some_and(|q| q.contains('#')) {
            return Err(Error::parse("PKCS#11 URI", "a fragment (`#`) is not allowed"));
        }
        let mut uri = Pkcs11Uri::default();
        if !path.is_empty() {
            for attr in path.split(';') {
                if attr.is_empty() {
                    return Err(Error::parse("PKCS#11 URI", "empty attribute (stray `;`?)"));
                }
                let (name, value) = attr
                    .split_once('=')
                    .ok_or_else(|| uri_error(shown_name(attr), "expected `name=value` in the path"))?;
                refuse_secret_in_path(name, value)?;
                uri.set_path_attribute(name, value)?;
            }
        }
        if let Some(query) = query {
            if query.is_empty() {
                return Err(Error::parse("PKCS#11 URI", "empty query after `?`"));
            }
            for attr in query.split('&') {
                if attr.is_empty() {
                    return Err(Error::parse("PKCS#11 URI", "empty attribute (stray `&`?)"));
                }
                let (name, value) = attr
                    .split_once('=')
                    .ok_or_else(|| uri_error(shown_name(attr), "expected `name=value` in the query"))?;
                uri.set_query_attribute(name, value)?;
            }
        }
        if uri.pin_source.is_some() && uri.pin_value.is_some() {
            return Err(uri_error("pin-value", "give either pin-source or pin-value, not both"));
        }
        Ok(uri)
    }

    fn set_path_attribute(&mut self, name: &str, value: &str) -> Result<()> {
        fn set<T>(slot: &mut Option<T>, name: &str, v: T) -> Result<()> {
            if slot.is_some() {
                return Err(uri_error(name, "given more than once"));
            }
            *slot = Some(v);
            Ok(())
        }
        match name {
            "token" => set(&mut self.token, name, decode_text(name, value, Part::Path)?),
            "manufacturer" => set(&mut self.manufacturer, name, decode_text(name, value, Part::Path)?),
            "serial" => set(&mut self.serial, name, decode_text(name, value, Part::Path)?),
            "model" => set(&mut self.model, name, decode_text(name, value, Part::Path)?),
            "object" => set(&mut self.object, name, decode_text(name, value, Part::Path)?),
            "id" => {
                let id = percent_decode(name, value, Part::Path)?;
                if id.is_empty() {
                    return Err(uri_error(name, "empty id"));
                }
                set(&mut self.id, name, id)
            }
            "slot-id" => {
                let text = decode_text(name, value, Part::Path)?;
                let v = text
                    .parse::<u64>()
                    .map_err(|_| uri_error(name, format!("`{text}` is not a decimal number")))?;
                set(&mut self.slot_id, name, v)
            }
            "type" => set(
                &mut self.object_type,
                name,
                ObjectType::parse(&decode_text(name, value, Part::Path)?)?,
            ),
            "slot-description" => set(&mut self.slot_description, name, decode_text(name, value, Part::Path)?),
            "slot-manufacturer" => set(&mut self.slot_manufacturer, name, decode_text(name, value, Part::Path)?),
            "library-manufacturer" => set(
                &mut self.library_manufacturer,
                name,
                decode_text(name, value, Part::Path)?,
            ),
            "library-description" => set(
                &mut self.library_description,
                name,
                decode_text(name, value, Part::Path)?,
            ),
            "library-version" => set(
                &mut self.library_version,
                name,
                parse_version(name, &decode_text(name, value, Part::Path)?)?,
            ),
            other => {
                check_vendor_name(other, Part::Path)?;
                percent_decode(other, value, Part::Path)?;
                if self.vendor_path.iter().any(|(n, _)| n == other) {
                    return Err(uri_error(other, "given more than once"));
                }
                self.vendor_path.push((other.to_string(), value.to_string()));
                Ok(())
            }
        }
    }

    fn set_query_attribute(&mut self, name: &str, value: &str) -> Result<()> {
        fn set<T>(slot: &mut Option<T>, name: &str, v: T) -> Result<()> {
            if slot.is_some() {
                return Err(uri_error(name, "given more than once"));
            }
            *slot = Some(v);
            Ok(())
        }
        match name {
            "module-path" => {
                let p = decode_text(name, value, Part::Query)?;
                if p.is_empty() {
                    return Err(uri_error(name, "empty path"));
                }
                set(&mut self.module_path, name, PathBuf::from(p))
            }
            "module-name" => {
                let n = decode_text(name, value, Part::Query)?;
                if n.is_empty() || n.contains('/') {
                    return Err(uri_error(name, "expected a module file name without `/`"));
                }
                set(&mut self.module_name, name, n)
            }
            "pin-source" => {
                let s = decode_text(name, value, Part::Query)?;
                if s.is_empty() {
                    return Err(uri_error(name, "empty pin-source"));
                }
                set(&mut self.pin_source, name, s)
            }
            "pin-value" => {
                let bytes = Zeroizing::new(percent_decode(name, value, Part::Query)?);
                let pin =
                    std::str::from_utf8(&bytes).map_err(|_| uri_error(name, "not UTF-8 after percent-decoding"))?;
                set(&mut self.pin_value, name, Zeroizing::new(pin.to_string()))
            }
            other => {
                check_vendor_name(other, Part::Query)?;
                percent_decode(other, value, Part::Query)?;
                tracing::warn!(
                    attribute = other,
                    "ignoring a vendor-specific query attribute of a PKCS#11 URI"
                );
                self.vendor_query.push((other.to_string(), value.to_string()));
                Ok(())
            }
        }
    }

    /// Refuse a URI that carries its PIN inline: tokens pass through logs and option copies.
    pub fn reject_pin_value(&self, context: &str) -> Result<()> {
        if self.pin_value.is_some() {
            return Err(uri_error(
                "pin-value",
                format!(
                    "{context} must not carry the PIN inline, because it is copied and logged as an alias-key \
                     token; put the PIN in a file readable only by the device user and name it with \
                     `pin-source=file:/path/to/pin`"
                ),
            ));
        }
        Ok(())
    }

    /// The PIN: from `pin-value`, or read from the `pin-source` file. `None` when neither is given.
    pub(crate) fn read_pin(&self) -> Result<Option<Zeroizing<String>>> {
        if let Some(v) = &self.pin_value {
            return Ok(Some(v.clone()));
        }
        match &self.pin_source {
            Some(source) => read_pin_file(&pin_source_path(source)?).map(Some),
            None => Ok(None),
        }
    }

    /// For messages about a missing attribute: the vendor-specific path attributes, which may be typos
    /// (`objekt=`). Empty when there are none.
    pub(crate) fn vendor_note(&self) -> String {
        if self.vendor_path.is_empty() {
            return String::new();
        }
        let names: Vec<String> = self.vendor_path.iter().map(|(n, _)| format!("`{n}`")).collect();
        format!(
            " ({} not an RFC 7512 attribute: read as vendor-specific)",
            if names.len() == 1 {
                format!("{} is", names[0])
            } else {
                format!("{} are", names.join(", "))
            }
        )
    }

    /// Whether the URI names an object (`object`, `id` or `type`).
    pub fn names_object(&self) -> bool {
        self.object.is_some() || self.id.is_some() || self.object_type.is_some()
    }

    /// The URI without its object attributes (and without pin-value): what selects a token.
    pub(crate) fn token_part(&self) -> Pkcs11Uri {
        Pkcs11Uri {
            object: None,
            id: None,
            object_type: None,
            pin_value: None,
            vendor_query: Vec::new(),
            ..self.clone()
        }
    }

    /// Describe the token attributes for error messages.
    pub(crate) fn token_description(&self) -> String {
        let mut parts = Vec::new();
        if let Some(v) = &self.token {
            parts.push(format!("token={v}"));
        }
        if let Some(v) = &self.manufacturer {
            parts.push(format!("manufacturer={v}"));
        }
        if let Some(v) = &self.serial {
            parts.push(format!("serial={v}"));
        }
        if let Some(v) = &self.model {
            parts.push(format!("model={v}"));
        }
        if let Some(v) = self.slot_id {
            parts.push(format!("slot-id={v}"));
        }
        for (name, v) in [
            ("slot-description", &self.slot_description),
            ("slot-manufacturer", &self.slot_manufacturer),
            ("library-manufacturer", &self.library_manufacturer),
            ("library-description", &self.library_description),
        ] {
            if let Some(v) = v {
                parts.push(format!("{name}={v}"));
            }
        }
        if let Some((major, minor)) = self.library_version {
            parts.push(format!("library-version={major}.{minor}"));
        }
        for (name, v) in &self.vendor_path {
            parts.push(format!("{name}={v}"));
        }
        if parts.is_empty() {
            "any token".to_string()
        } else {
            parts.join(";")
        }
    }

    /// Describe the object attributes for error messages.
    pub(crate) fn object_description(&self) -> String {
        let mut parts = Vec::new();
        if let Some(v) = &self.object {
            parts.push(format!("object={v}"));
        }
        if let Some(v) = &self.id {
            parts.push(format!("id={}", encode_bytes(v)));
        }
        if let Some(v) = self.object_type {
            parts.push(format!("type={}", v.as_str()));
        }
        if parts.is_empty() {
            "any object".to_string()
        } else {
            parts.join(";")
        }
    }

    /// The URI as text without `pin-value`: safe to hand out as an alias-key token.
    pub fn to_token_string(&self) -> String {
        let mut path = Vec::new();
        let mut push = |name: &str, v: &str| path.push(format!("{name}={}", encode_text(v, Part::Path)));
        if let Some(v) = &self.token {
            push("token", v);
        }
        if let Some(v) = &self.manufacturer {
            push("manufacturer", v);
        }
        if let Some(v) = &self.serial {
            push("serial", v);
        }
        if let Some(v) = &self.model {
            push("model", v);
        }
        if let Some(v) = self.slot_id {
            push("slot-id", &v.to_string());
        }
        if let Some(v) = &self.slot_description {
            push("slot-description", v);
        }
        if let Some(v) = &self.slot_manufacturer {
            push("slot-manufacturer", v);
        }
        if let Some(v) = &self.library_manufacturer {
            push("library-manufacturer", v);
        }
        if let Some(v) = &self.library_description {
            push("library-description", v);
        }
        if let Some((major, minor)) = self.library_version {
            push("library-version", &format!("{major}.{minor}"));
        }
        if let Some(v) = &self.object {
            push("object", v);
        }
        if let Some(v) = self.object_type {
            push("type", v.as_str());
        }
        if let Some(v) = &self.id {
            path.push(format!("id={}", encode_bytes(v)));
        }
        for (name, v) in &self.vendor_path {
            path.push(format!("{name}={v}"));
        }
        let mut query = Vec::new();
        if let Some(v) = &self.module_path {
            query.push(format!(
                "module-path={}",
                encode_text(&v.to_string_lossy(), Part::Query)
            ));
        }
        if let Some(v) = &self.module_name {
            query.push(format!("module-name={}", encode_text(v, Part::Query)));
        }
        if let Some(v) = &self.pin_source {
            query.push(format!("pin-source={}", encode_text(v, Part::Query)));
        }
        let mut out = format!("pkcs11:{}", path.join(";"));
        if !query.is_empty() {
            out.push('?');
            out.push_str(&query.join("&"));
        }
        out
    }
}

impl std::str::FromStr for Pkcs11Uri {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Pkcs11Uri::parse(s)
    }
}

/// The file a `pin-source` names: `file:/path`, `file:///path` or a plain path.
pub(crate) fn pin_source_path(source: &str) -> Result<PathBuf> {
    let path = if let Some(rest) = source.strip_prefix("file://") {
        if !rest.starts_with('/') {
            return Err(uri_error(
                "pin-source",
                "`file://` must be followed by an absolute path",
            ));
        }
        rest
    } else if let Some(rest) = source.strip_prefix("file:") {
        rest
    } else if source.contains(':') && !source.starts_with('/') && !source.starts_with('.') {
        return Err(uri_error(
            "pin-source",
            format!("`{source}`: only files are supported (`file:/path` or a path)"),
        ));
    } else {
        source
    };
    if path.is_empty() {
        return Err(uri_error("pin-source", "empty file name"));
    }
    Ok(PathBuf::from(path))
}

/// Read a PIN file; one trailing newline is removed.
pub fn read_pin_file(path: &Path) -> Result<Zeroizing<String>> {
    let bytes = hsm_core::fs::read_bounded("read PIN file", path, hsm_core::fs::SECRET_MAX)?;
    let text =
        std::str::from_utf8(&bytes).map_err(|_| Error::parse(format!("PIN file {}", path.display()), "not UTF-8"))?;
    let pin = text.strip_suffix('\n').unwrap_or(text);
    let pin = pin.strip_suffix('\r').unwrap_or(pin);
    if pin.is_empty() {
        return Err(Error::parse(
            format!("PIN file {}", path.display()),
            "the file is empty",
        ));
    }
    Ok(Zeroizing::new(pin.to_string()))
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Where an attribute stands: the path (`;`-separated) or the query (`&`-separated).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Path,
    Query,
}

/// Characters RFC 7512 allows unescaped in a value: unreserved, `pk11-res-avail`, plus `&` in
/// the path and `/ ? |` in the query.
fn is_value_char(b: u8, part: Part) -> bool {
    b.is_ascii_alphanumeric()
        || b"-._~:[]@!$'()*+,=".contains(&b)
        || match part {
            Part::Path => b == b'&',
            Part::Query => b"/?|".contains(&b),
        }
}

fn percent_decode(attribute: &str, value: &str, part: Part) -> Result<Vec<u8>> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_value);
            let lo = bytes.get(i + 2).copied().and_then(hex_value);
            match (hi, lo) {
                (Some(h), Some(l)) => out.push(h << 4 | l),
                _ => {
                    return Err(uri_error(
                        attribute,
                        format!("bad percent-encoding at byte {i}: `%` must be followed by two hex digits"),
                    ));
                }
            }
            i += 3;
        } else if is_value_char(b, part) {
            out.push(b);
            i += 1;
        } else {
            let reason = if SECRET_ATTRIBUTES.contains(&attribute) {
                format!("the character at byte {i} must be percent-encoded (not shown: the value is secret)")
            } else {
                format!(
                    "character `{}` at byte {i} must be percent-encoded",
                    char::from(b).escape_default()
                )
            };
            return Err(uri_error(attribute, reason));
        }
    }
    Ok(out)
}

fn decode_text(attribute: &str, value: &str, part: Part) -> Result<String> {
    String::from_utf8(percent_decode(attribute, value, part)?)
        .map_err(|_| uri_error(attribute, "not UTF-8 after percent-decoding"))
}

fn encode_text(v: &str, part: Part) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) || (part == Part::Query && b == b'/') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Every byte as `%XX` (the usual form of `id`).
pub(crate) fn encode_bytes(v: &[u8]) -> String {
    let mut out = String::with_capacity(v.len() * 3);
    for b in v {
        let _ = write!(out, "%{b:02X}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_attributes_and_round_trips() {
        let u = Pkcs11Uri::parse(
            "pkcs11:token=My%20Token;manufacturer=SoftHSM%20project;serial=abc;model=SoftHSM%20v2;slot-id=7;\
             object=dev%3Bkey;id=%01%02%ff;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin",
        )
        .unwrap();
        assert_eq!(u.token.as_deref(), Some("My Token"));
        assert_eq!(u.manufacturer.as_deref(), Some("SoftHSM project"));
        assert_eq!(u.serial.as_deref(), Some("abc"));
        assert_eq!(u.model.as_deref(), Some("SoftHSM v2"));
        assert_eq!(u.slot_id, Some(7));
        assert_eq!(u.object.as_deref(), Some("dev;key"));
        assert_eq!(u.id.as_deref(), Some(&[1u8, 2, 0xff][..]));
        assert_eq!(u.object_type, Some(ObjectType::Private));
        assert_eq!(
            u.module_path.as_deref(),
            Some(Path::new("/usr/lib/softhsm/libsofthsm2.so"))
        );
        assert_eq!(
            pin_source_path(u.pin_source.as_deref().unwrap()).unwrap(),
            Path::new("/run/pin")
        );
        let again = Pkcs11Uri::parse(&u.to_token_string()).unwrap();
        assert_eq!(again, u);
        assert_eq!(Pkcs11Uri::parse("pkcs11:").unwrap(), Pkcs11Uri::default());
        // RFC 7512 allows `&` and `=` in path values, `/ ? |` in query values.
        let u = Pkcs11Uri::parse("pkcs11:object=a&b=c?pin-source=/x?y|z").unwrap();
        assert_eq!(u.object.as_deref(), Some("a&b=c"));
        assert_eq!(u.pin_source.as_deref(), Some("/x?y|z"));
        let odd = Pkcs11Uri {
            token: Some("a/b;c?d".into()),
            object: Some("é k".into()),
            pin_source: Some("/p&q".into()),
            ..Pkcs11Uri::default()
        };
        assert_eq!(Pkcs11Uri::parse(&odd.to_token_string()).unwrap(), odd);
    }

    fn err(text: &str) -> String {
        Pkcs11Uri::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn strict_errors_name_the_attribute() {
        let e = err("pkcs11:token=a;col.our=blue");
        assert!(e.contains("`col.our`") && e.contains("vendor attribute name"), "{e}");
        let e = err("pkcs11:token=a;pin-source=/p");
        assert!(
            e.contains("`pin-source`") && e.contains("query attribute, given in the path"),
            "{e}"
        );
        let e = err("pkcs11:?token=a");
        assert!(
            e.contains("`token`") && e.contains("path attribute, given in the query"),
            "{e}"
        );
        let e = err("pkcs11:x-a=1;x-a=2");
        assert!(e.contains("`x-a`") && e.contains("more than once"), "{e}");
        let e = err("pkcs11:x-a=%zz");
        assert!(e.contains("`x-a`") && e.contains("percent-encoding"), "{e}");
        for bad in ["", "x", "1.", ".1", "1.2.3", "256", "1.256", "a.b"] {
            let e = err(&format!("pkcs11:library-version={bad}"));
            assert!(e.contains("`library-version`"), "{bad}: {e}");
        }
        let e = err("pkcs11:token=a;token=b");
        assert!(e.contains("`token`") && e.contains("more than once"), "{e}");
        let e = err("pkcs11:id=%0g");
        assert!(e.contains("`id`") && e.contains("percent-encoding"), "{e}");
        let e = err("pkcs11:object=a%2");
        assert!(e.contains("`object`") && e.contains("percent-encoding"), "{e}");
        let e = err("pkcs11:object=a b");
        assert!(e.contains("`object`") && e.contains("percent-encoded"), "{e}");
        let e = err("pkcs11:token=%ff%fe");
        assert!(e.contains("`token`") && e.contains("UTF-8"), "{e}");
        let e = err("pkcs11:slot-id=x1");
        assert!(e.contains("`slot-id`"), "{e}");
        let e = err("pkcs11:type=key");
        assert!(e.contains("`type`"), "{e}");
        let e = err("pkcs11:token=a?pin-value=1&pin-value=2");
        assert!(e.contains("`pin-value`") && e.contains("more than once"), "{e}");
        let e = err("pkcs11:token=a?pin-value=1&pin-source=/p");
        assert!(e.contains("`pin-value`"), "{e}");
        let e = err("pkcs11:token=a?fo;o=1");
        assert!(e.contains("`fo;o`") && e.contains("vendor attribute name"), "{e}");
        let e = err("pkcs11:token=a?module-name=a/b");
        assert!(e.contains("`module-name`"), "{e}");
        let e = err("pkcs11:token");
        assert!(e.contains("`token`") && e.contains("name=value"), "{e}");
        let e = err("token=a");
        assert!(e.contains("pkcs11:"), "{e}");
        let e = err("pkcs11:token=a;;object=b");
        assert!(e.contains("empty attribute"), "{e}");
        let e = err("pkcs11:id=");
        assert!(e.contains("`id`"), "{e}");
        let e = err("pkcs11:object=a/b");
        assert!(e.contains("`object`") && e.contains("`/`"), "{e}");
        let e = err("pkcs11:token=t?pin-source=a;b");
        assert!(e.contains("`pin-source`") && e.contains("`;`"), "{e}");
    }

    /// Every example URI of RFC 7512 section 3.3 (the RFC wraps the long ones for display only).
    const RFC7512_EXAMPLES: [&str; 13] = [
        "pkcs11:",
        "pkcs11:object=my-pubkey;type=public",
        "pkcs11:object=my-key;type=private?pin-source=file:/etc/token",
        "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;model=1.0;\
         object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91;serial=?pin-source=file:/etc/token_pin",
        "pkcs11:object=my-sign-key;type=private?module-name=mypkcs11",
        "pkcs11:object=my-sign-key;type=private?module-path=/mnt/libmypkcs11.so.1",
        "pkcs11:token=Software%20PKCS%2311%20softtoken;manufacturer=Snake%20Oil,%20Inc.?pin-value=the-pin",
        "pkcs11:slot-description=Sun%20Metaslot",
        "pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;library-description=Soft%20Token%20Library;\
         library-version=1.23",
        "pkcs11:token=My%20token%25%20created%20by%20Joe;library-version=3;id=%01%02%03%Ba%dd%Ca%fe%04%05%06",
        "pkcs11:token=A%20name%20with%20a%20substring%20%25%3B;object=my-certificate;type=cert",
        "pkcs11:token=Name%20with%20a%20small%20A%20with%20acute:%20%C3%A1;object=my-certificate;type=cert",
        "pkcs11:token=my-token;object=my-certificate;type=cert;vendor-aaa=value-a\
         ?pin-source=file:/etc/token_pin&vendor-bbb=value-b",
    ];

    #[test]
    fn every_rfc7512_example_parses_and_round_trips() {
        for text in RFC7512_EXAMPLES {
            let u = Pkcs11Uri::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let mut back = Pkcs11Uri::parse(&u.to_token_string()).unwrap();
            back.pin_value = u.pin_value.clone();
            back.vendor_query = u.vendor_query.clone();
            assert_eq!(back, u, "{text}");
        }
        let u = Pkcs11Uri::parse(RFC7512_EXAMPLES[3]).unwrap();
        assert_eq!(u.token.as_deref(), Some("The Software PKCS#11 Softtoken"));
        assert_eq!(u.manufacturer.as_deref(), Some("Snake Oil, Inc."));
        assert_eq!(u.serial.as_deref(), Some(""));
        assert_eq!(
            u.id.as_deref(),
            Some(&[0x69, 0x95, 0x3e, 0x5c, 0xf4, 0xbd, 0xec, 0x91][..])
        );
        let u = Pkcs11Uri::parse(RFC7512_EXAMPLES[7]).unwrap();
        assert_eq!(u.slot_description.as_deref(), Some("Sun Metaslot"));
        let u = Pkcs11Uri::parse(RFC7512_EXAMPLES[8]).unwrap();
        assert_eq!(u.library_manufacturer.as_deref(), Some("Snake Oil, Inc."));
        assert_eq!(u.library_description.as_deref(), Some("Soft Token Library"));
        assert_eq!(u.library_version, Some((1, 23)));
        let u = Pkcs11Uri::parse(RFC7512_EXAMPLES[9]).unwrap();
        assert_eq!(u.token.as_deref(), Some("My token% created by Joe"));
        assert_eq!(u.library_version, Some((3, 0)));
        assert_eq!(u.id.as_deref(), Some(&[1, 2, 3, 0xba, 0xdd, 0xca, 0xfe, 4, 5, 6][..]));
        assert_eq!(
            Pkcs11Uri::parse(RFC7512_EXAMPLES[10]).unwrap().token.as_deref(),
            Some("A name with a substring %;")
        );
        assert_eq!(
            Pkcs11Uri::parse(RFC7512_EXAMPLES[11]).unwrap().token.as_deref(),
            Some("Name with a small A with acute: \u{e1}")
        );
        let u = Pkcs11Uri::parse(RFC7512_EXAMPLES[12]).unwrap();
        assert_eq!(u.vendor_path, vec![("vendor-aaa".to_string(), "value-a".to_string())]);
        assert_eq!(u.vendor_query, vec![("vendor-bbb".to_string(), "value-b".to_string())]);
        assert_eq!(u.pin_source.as_deref(), Some("file:/etc/token_pin"));
        // Vendor path attributes select the token, so they stay in the token string; query ones do not.
        assert_eq!(
            u.to_token_string(),
            "pkcs11:token=my-token;object=my-certificate;type=cert;vendor-aaa=value-a?pin-source=file:/etc/token_pin"
        );
    }

    #[test]
    fn pin_value_is_never_written_back() {
        let u = Pkcs11Uri::parse("pkcs11:token=t;object=k?pin-value=12%2034").unwrap();
        assert_eq!(u.read_pin().unwrap().unwrap().as_str(), "12 34");
        assert_eq!(u.to_token_string(), "pkcs11:token=t;object=k");
        assert!(!format!("{u:?}").contains("12"));
        let e = u.reject_pin_value("the x509 key").unwrap_err().to_string();
        assert!(e.contains("pin-value") && e.contains("pin-source"), "{e}");
    }

    #[test]
    fn pin_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pin");
        std::fs::write(&p, "1234\n").unwrap();
        let u = Pkcs11Uri::parse(&format!("pkcs11:token=t?pin-source=file:{}", p.display())).unwrap();
        assert_eq!(u.read_pin().unwrap().unwrap().as_str(), "1234");
        std::fs::write(&p, "").unwrap();
        assert!(u.read_pin().unwrap_err().to_string().contains("empty"));
        let missing = Pkcs11Uri::parse("pkcs11:token=t?pin-source=/nonexistent/pin").unwrap();
        assert!(missing.read_pin().unwrap_err().to_string().contains("/nonexistent/pin"));
        assert!(pin_source_path("https://x/pin").is_err());
    }
}
