//! The JSON lines a leaf-agent prints on stdout and herd reads.
