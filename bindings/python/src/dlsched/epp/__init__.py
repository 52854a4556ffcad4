"""dlsched-epp: an Endpoint Picker (EPP) for Gateway API inference gateways.

The picker speaks Envoy's external processing protocol (ext_proc) as the
Gateway API Inference Extension's endpoint picker protocol describes it
(docs/proposals/004-endpoint-picker-protocol), scores the model servers of a
pool with the gateway's own scorer mix, and lets a dlsched agent learn, from
the streamed responses, which server to pick.

Modules: discovery (Endpoint, FileDiscovery), k8s (KubernetesDiscovery),
scorers (the gateway scorer mix, a pure function), signals (metrics scraping,
in-flight counts, prefix index, slot table), picker (the decision and its
reward), server (the gRPC ext_proc servicer and health), emulator (a model
server emulator for tests and benchmarks).
"""
