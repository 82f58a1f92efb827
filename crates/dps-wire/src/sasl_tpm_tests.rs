use super::*;

const EK: &[u8] = &[0x01, 0x3a, 0x00, 0x01, 0x00, 0x0b];

#[test]
fn init_is_the_sdks_layout() {
    let init = TpmInit {
        id_scope: "0ne00000001",
        registration_id: "dev-1",
        endorsement_key: EK,
    };
    let bytes = init.encode().unwrap();
    // As prov_sasl_tpm.c's construct_send_data and sasl_tpm.ts's getInitFrame lay it out.
    let mut expected = vec![0u8];
    expected.extend_from_slice(b"0ne00000001\0dev-1\0");
    expected.extend_from_slice(EK);
    assert_eq!(bytes, expected);
    assert_eq!(TpmInit::decode(&bytes).unwrap(), init);
}

#[test]
fn init_refusals() {
    assert_eq!(TpmInit::decode(&[]), Err(SaslTpmError::Empty("init")));
    // The C SDK's segmented init (control byte 0x80 | ...) is refused, not misread.
    assert!(matches!(
        TpmInit::decode(b"\x80scope\0dev\0ek"),
        Err(SaslTpmError::Control { byte: 0x80, .. })
    ));
    assert_eq!(TpmInit::decode(b"\0scope"), Err(SaslTpmError::Field("id scope")));
    assert_eq!(
        TpmInit::decode(b"\0scope\0dev"),
        Err(SaslTpmError::Field("registration id"))
    );
    assert_eq!(
        TpmInit::decode(b"\0scope\0dev\0"),
        Err(SaslTpmError::BadValue("endorsement key"))
    );
    assert_eq!(TpmInit::decode(b"\0\0dev\0k"), Err(SaslTpmError::BadValue("id scope")));
    let long = vec![b'a'; MAX_FRAME_DATA];
    let too_large = TpmInit {
        id_scope: "s",
        registration_id: "r",
        endorsement_key: &long,
    };
    assert!(matches!(too_large.encode(), Err(SaslTpmError::TooLarge { .. })));
    let mut bytes = b"\0s\0r\0".to_vec();
    bytes.extend_from_slice(&long);
    assert!(matches!(TpmInit::decode(&bytes), Err(SaslTpmError::TooLarge { .. })));
}

#[test]
fn key_and_token_responses() {
    let srk = encode_storage_root_key(EK).unwrap();
    assert_eq!(srk[0], 0);
    assert_eq!(decode_storage_root_key(&srk).unwrap(), EK);
    assert_eq!(
        decode_storage_root_key(&[0]),
        Err(SaslTpmError::BadValue("storage root key"))
    );
    let token = encode_token("SharedAccessSignature sr=a&sig=b&se=1&skn=registration").unwrap();
    assert_eq!(&token[..1], &[0]);
    assert_eq!(
        decode_token(&token).unwrap(),
        "SharedAccessSignature sr=a&sig=b&se=1&skn=registration"
    );
    assert_eq!(decode_token(b"\0\xff"), Err(SaslTpmError::TokenNotUtf8));
    assert_eq!(decode_token(b"\0a\0b"), Err(SaslTpmError::BadValue("SAS token")));
    assert!(is_segment_ack(&[0]) && !is_segment_ack(&[0, 0]) && !is_segment_ack(&[]));
}

#[test]
fn segments_round_trip_and_carry_the_sequence() {
    let blob: Vec<u8> = (0..=255u8).cycle().take(2 * MAX_SEGMENT + 17).collect();
    let segments = challenge_segments(&blob).unwrap();
    // The control bytes as prov_sasl_tpm.c reads them: 0x80 valid, 0x40 last, low two bits sequence.
    let controls: Vec<u8> = segments.iter().map(|s| s[0]).collect();
    assert_eq!(controls, [0x80, 0x81, 0xc2]);
    assert!(segments.iter().all(|s| s.len() <= MAX_FRAME_DATA));
    let mut assembler = BlobAssembler::default();
    let mut out = None;
    for s in &segments {
        assert!(out.is_none());
        let Challenge::Segment { sequence, last, data } = Challenge::decode(s).unwrap() else {
            panic!("a segment read as the SRK request");
        };
        out = assembler.push(sequence, last, data).unwrap();
    }
    assert_eq!(out.unwrap(), blob);
    assert_eq!(Challenge::decode(&SRK_REQUEST).unwrap(), Challenge::StorageRootKey);
    assert_eq!(Challenge::decode(&[]), Err(SaslTpmError::Empty("challenge")));
}

#[test]
fn segment_bounds() {
    assert_eq!(
        challenge_segments(&vec![0; MAX_SEGMENTS * MAX_SEGMENT + 1]),
        Err(SaslTpmError::TooManySegments)
    );
    assert_eq!(
        challenge_segments(&vec![0; MAX_SEGMENTS * MAX_SEGMENT]).unwrap().len(),
        4
    );
    let mut assembler = BlobAssembler::default();
    assert_eq!(
        assembler.push(1, false, b"x"),
        Err(SaslTpmError::Sequence { expected: 0, got: 1 })
    );
    // A service that never says "last": refused after the two-bit sequence is spent.
    let mut assembler = BlobAssembler::default();
    for i in 0..MAX_SEGMENTS as u8 {
        assert_eq!(assembler.push(i, false, b"x").unwrap(), None);
    }
    assert_eq!(assembler.push(0, false, b"x"), Err(SaslTpmError::TooManySegments));
}
