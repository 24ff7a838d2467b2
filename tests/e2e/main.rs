//! End-to-end tests against a real kube-apiserver, etcd and kube-controller-manager
//! (see `tests/support`). One binary, so the control plane starts once per run.

mod chart;
mod common;
mod crds;
mod operator;
mod testbed;
