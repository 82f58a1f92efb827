//! Objects on a token: the search template of a URI's object attributes, and exactly one object found by it.

use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys as sys;
use hsm_core::{Error, Origin, Result};

use crate::error::device;
use crate::token::{Token, is_public_session};
use crate::uri::{ObjectType, Pkcs11Uri};

/// The CKO class a URI `type` means.
pub(crate) fn class_of(t: ObjectType) -> ObjectClass {
    match t {
        ObjectType::Private => ObjectClass::PRIVATE_KEY,
        ObjectType::Public => ObjectClass::PUBLIC_KEY,
        ObjectType::Cert => ObjectClass::CERTIFICATE,
        ObjectType::SecretKey => ObjectClass::SECRET_KEY,
        ObjectType::Data => ObjectClass::DATA,
    }
}

/// The search template for a URI's object attributes.
pub(crate) fn template(uri: &Pkcs11Uri) -> Vec<Attribute> {
    let mut t = Vec::new();
    if let Some(ty) = uri.object_type {
        t.push(Attribute::Class(class_of(ty)));
    }
    if let Some(id) = &uri.id {
        t.push(Attribute::Id(id.clone()));
    }
    if let Some(label) = &uri.object {
        t.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    t
}

/// Exactly one object matching the URI's object attributes.
pub(crate) fn find_one(session: &Session, uri: &Pkcs11Uri, token: &Token) -> Result<ObjectHandle> {
    let found = session
        .find_objects(&template(uri))
        .map_err(|e| device("C_FindObjects", e))?;
    match found.len() {
        1 => Ok(found[0]),
        0 if token.has_pin() && is_public_session(session) => Err(Error::Device {
            origin: Origin::Pkcs11,
            op: "C_FindObjects".into(),
            rv: sys::CKR_USER_NOT_LOGGED_IN,
            message: format!(
                "no object matches `{}` and the session is not logged in",
                uri.object_description()
            ),
        }),
        0 => Err(Error::invalid(
            "PKCS#11 URI",
            format!(
                "no object matches `{}` on token `{}` (is the object private and the PIN missing?)",
                uri.object_description(),
                token.uri().token_description()
            ),
        )),
        n => {
            let mut labels = Vec::new();
            for h in &found {
                if let Ok(attrs) = session.get_attributes(*h, &[AttributeType::Label]) {
                    for a in attrs {
                        if let Attribute::Label(l) = a {
                            labels.push(String::from_utf8_lossy(&l).into_owned());
                        }
                    }
                }
            }
            let hint = if uri.id.is_none() && uri.object.is_some() {
                "add `id` to choose one"
            } else if uri.object.is_none() {
                "add `object` or `id` to choose one"
            } else {
                "give the objects distinct ids or labels"
            };
            Err(Error::invalid(
                "PKCS#11 URI",
                format!(
                    "ambiguous: {n} objects match `{}` (labels: {}); {hint}",
                    uri.object_description(),
                    labels.join(", ")
                ),
            ))
        }
    }
}
