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

use std::path::PathBuf;

use hsm_core::{Error, Result};
use zeroize::Zeroizing;

mod error;
mod pct;
mod pin;
mod text;

use error::uri_error;
use pct::{Part, decode_text, percent_decode};
pub(crate) use pin::pin_source_path;
pub use pin::read_pin_file;

/// The kind of object a URI names (`type=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectType {
    /// A private key (`type=private`).
    Private,
    /// A public key (`type=public`).
    Public,
    /// A certificate (`type=cert`).
    Cert,
    /// A secret key (`type=secret-key`).
    SecretKey,
    /// A data object (`type=data`).
    Data,
}

impl ObjectType {
    /// The `type` value as RFC 7512 spells it.
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
    /// `token`: the token label.
    pub token: Option<String>,
    /// `manufacturer`: the token's manufacturer.
    pub manufacturer: Option<String>,
    /// `serial`: the token's serial number.
    pub serial: Option<String>,
    /// `model`: the token's model.
    pub model: Option<String>,
    /// `slot-id`: the slot's number.
    pub slot_id: Option<u64>,
    /// `slot-description`: the slot's description.
    pub slot_description: Option<String>,
    /// `slot-manufacturer`: the slot's manufacturer.
    pub slot_manufacturer: Option<String>,
    /// `library-manufacturer`: the module library's manufacturer.
    pub library_manufacturer: Option<String>,
    /// `library-description`: the module library's description.
    pub library_description: Option<String>,
    /// `library-version=M[.N]`: (major, minor); a missing minor is 0.
    pub library_version: Option<(u8, u8)>,
    /// Vendor-specific path attributes, in order: (name, value as written, percent-encoded).
    pub vendor_path: Vec<(String, String)>,
    /// Vendor-specific query attributes: parsed and ignored; never written back.
    pub vendor_query: Vec<(String, String)>,
    /// `object`: the object's label.
    pub object: Option<String>,
    /// `id`: the object's CKA_ID (percent-decoded bytes).
    pub id: Option<Vec<u8>>,
    /// `type`: the object's class.
    pub object_type: Option<ObjectType>,
    /// `module-path`: the module library to load.
    pub module_path: Option<PathBuf>,
    /// `module-name`: the module library's name, looked up in the system's module directory.
    pub module_name: Option<String>,
    /// `pin-source`: where the PIN is read from (a file path or `file:` URI).
    pub pin_source: Option<String>,
    /// `pin-value`: the PIN itself.
    pub pin_value: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for Pkcs11Uri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never prints pin-value.
        f.write_str(&self.to_token_string())
    }
}

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
    pub fn vendor_note(&self) -> String {
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
}

impl std::str::FromStr for Pkcs11Uri {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Pkcs11Uri::parse(s)
    }
}

#[cfg(test)]
mod tests;
