//! Real recordings of the earlier schema versions, kept so that readers of every version stay
//! tested after `samples/` is re-recorded in the current one.
//!
//! `recordings/v1-web.parquet` is a version 1 recording of web request bursts on loopback;
//! `recordings/v2-containers.parquet` a version 2 recording of podman containers (a web server
//! on the host network, a client container, a sidecar in a network namespace of its own, a host
//! client). Both were made by the recorder of their time and are never rewritten.

use std::path::PathBuf;

use crate::env::workspace_root;

/// The version 1 recording.
pub fn v1_web() -> PathBuf {
    workspace_root().join("testkit/recordings/v1-web.parquet")
}

/// The version 2 recording.
pub fn v2_containers() -> PathBuf {
    workspace_root().join("testkit/recordings/v2-containers.parquet")
}

/// Every earlier-version recording, with the name its snapshots go by (`v1-web`, ...).
pub fn earlier_versions() -> Vec<(&'static str, PathBuf)> {
    vec![("v1-web", v1_web()), ("v2-containers", v2_containers())]
}
