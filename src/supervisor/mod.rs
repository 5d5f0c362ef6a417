//! The `herd` supervisor: spawns nats-server, the hub and one leaf-agent per
//! slot, reads their JSON lines, and aggregates a trial's summary.
