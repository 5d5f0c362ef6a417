//! Guards for external processes and shared test utilities.
