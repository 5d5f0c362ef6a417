//! The deterministic workload generator.
