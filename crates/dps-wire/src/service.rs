//! The DPS service API (filled in by the service-side work).
