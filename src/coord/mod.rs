//! Coordination on NATS JetStream: task records, claims, file holds with a
//! TTL, fencing checks, and the subscription to the hub's tip stream.
