//! A URI as text: written back as an alias-key token (never with its PIN), and described for
//! error messages.

use super::Pkcs11Uri;
use super::pct::{Part, encode_bytes, encode_text};

impl Pkcs11Uri {
    /// Describe the token attributes for error messages.
    pub fn token_description(&self) -> String {
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
    pub fn object_description(&self) -> String {
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
