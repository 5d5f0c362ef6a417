//! The hub process: a Fossil-compatible HTTP sync server over one
//! repository, with a single writer that keeps trunk linear and a tip
//! broadcast on NATS JetStream.
