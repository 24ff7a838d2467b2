//! The built-in Rego library, embedded at build time from `policies/` (see `build.rs`).

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/policies.rs"));
}

/// The embedded `.rego` modules (tests excluded), as (path under `policies/`, source).
pub fn modules() -> impl Iterator<Item = (&'static str, &'static str)> {
    embedded::FILES.iter().copied().filter(|(path, _)| path.ends_with(".rego"))
}

/// The embedded `metadata.json` (rule metadata), if the library has one.
pub fn metadata_json() -> Option<&'static str> {
    embedded::FILES.iter().find(|(path, _)| *path == "metadata.json").map(|(_, src)| *src)
}
