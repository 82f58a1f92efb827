//! Random ids (version-4 UUIDs for operation ids, etags and tracking ids) and RFC 3339 UTC times, as the DPS
//! answers carry them.

/// A random version-4 UUID string; `None` when the system random generator fails.
pub(crate) fn random_uuid() -> Option<String> {
    use ring::rand::SecureRandom as _;
    let mut b = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut b).ok()?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

/// Now, as an RFC 3339 UTC time.
pub(crate) fn now_rfc3339() -> String {
    format_time(time::OffsetDateTime::now_utc())
}

/// Seconds since the epoch as an RFC 3339 UTC time (the number itself when out of range).
pub(crate) fn rfc3339_from_unix(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .map_or_else(|| format!("{secs} (seconds since the epoch)"), format_time)
}

fn format_time(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}
