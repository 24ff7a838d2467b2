# The two commands of the README, and a few helpers.
.PHONY: demo test controlplane clean-cache

## Run the demo: a local control plane, the CRDs, sample CRM workloads and policies, the operator.
demo:
	tests/demo.sh

## Run all tests (unit, Rego, end-to-end on a real local control plane).
test:
	tests/run.sh

## Build (or reuse) the cached control plane binaries.
controlplane:
	tests/controlplane/build.sh

clean-cache:
	rm -rf "$${XDG_CACHE_HOME:-$$HOME/.cache}/crm-risk-operator"
