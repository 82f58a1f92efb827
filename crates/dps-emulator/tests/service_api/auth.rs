//! Service SAS tokens: bad or expired ones are 401, missing rights 403; the printed connection string works.

use serde_json::json;

use crate::api::sas;
use crate::api::*;
use crate::common::*;

#[test]
fn bad_or_expired_tokens_are_401_and_missing_rights_403() {
    let emu = start(vec![]);
    let host = emu.global_endpoint();
    let reader = Client::new(&emu, "reader", READER_KEY);
    let body = json!({"registrationId": "r1", "attestation": {"type": "symmetricKey"}});
    let (s, b) = reader.put("/enrollments/r1", body.clone());
    assert_error(s, &b, 403, "lacks the right EnrollmentWrite");
    assert_eq!(reader.get("/enrollments/r1").0, 404, "reading is allowed");
    assert_eq!(reader.delete("/registrations/r1", None), 403);
    let with = |auth: Option<String>| {
        let mut req = reader.agent.get(&format!("https://{host}/enrollments/r1?{API}"));
        if let Some(a) = auth {
            req = req.set("Authorization", &a);
        }
        outcome(req.call())
    };
    for (auth, needle) in [
        (None, "no Authorization header"),
        (Some(sas(&host, "reader", READER_KEY, now() - 10)), "expired"),
        (
            Some(sas(&host, "reader", OWNER_KEY, now() + 60)),
            "does not match the key of shared access policy 'reader'",
        ),
        (
            Some(sas(&host, "nobody", READER_KEY, now() + 60)),
            "no shared access policy named 'nobody'",
        ),
        (
            Some(sas("other.example", "reader", READER_KEY, now() + 60)),
            "is not this service's host",
        ),
        (Some("SharedAccessSignature sr=x".to_string()), "malformed SAS token"),
    ] {
        let (s, b) = with(auth);
        assert_error(s, &b, 401, needle);
    }
    // The connection string the emulator prints works as it is.
    let cs = emu.service_connection_string(None).unwrap();
    let parts: std::collections::HashMap<&str, &str> = cs.split(';').filter_map(|p| p.split_once('=')).collect();
    assert_eq!(parts["HostName"], host);
    assert_eq!(parts["SharedAccessKeyName"], "provisioningserviceowner");
    let c = Client::new(&emu, parts["SharedAccessKeyName"], parts["SharedAccessKey"]);
    assert_eq!(c.put("/enrollments/r1", body).0, 200);
}
