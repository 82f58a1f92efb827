//! The DPS service API's wire types (`dps_wire::service`): any JSON body either fails to decode or
//! decodes to a value whose encoding decodes again to the same encoding (nothing lost or invented
//! on a second trip, unknown fields and enum values included), and never panics.
#![no_main]

use dps_wire::service::{
    Attestation, BulkEnrollmentGroupOperation, BulkEnrollmentOperation, BulkResult, DeviceRegistrationState,
    EnrollmentGroup, IndividualEnrollment, QuerySpecification,
};
use dps_wire::ErrorDetails;
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn stable<T: DeserializeOwned + Serialize>(data: &[u8]) {
    let Ok(first) = serde_json::from_slice::<T>(data) else { return };
    let Ok(encoded) = serde_json::to_value(&first) else { return };
    let again: T = match serde_json::from_value(encoded.clone()) {
        Ok(v) => v,
        Err(e) => panic!("our own encoding {encoded} does not decode: {e}"),
    };
    assert_eq!(serde_json::to_value(&again).ok(), Some(encoded));
}

fuzz_target!(|data: &[u8]| {
    stable::<IndividualEnrollment>(data);
    stable::<EnrollmentGroup>(data);
    stable::<Attestation>(data);
    stable::<DeviceRegistrationState>(data);
    stable::<Vec<IndividualEnrollment>>(data);
    stable::<BulkEnrollmentOperation>(data);
    stable::<BulkEnrollmentGroupOperation>(data);
    stable::<BulkResult>(data);
    stable::<QuerySpecification>(data);
    stable::<ErrorDetails>(data);
});
