//! The DPS device API (filled in by the device-side work).
