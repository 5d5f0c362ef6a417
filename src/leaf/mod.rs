//! One leaf-agent slot: its own repository and worktree, and the
//! Open → Claim → Commit → Close loop against a live hub.
