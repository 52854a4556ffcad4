"""An Envoy configuration for dlsched-epp, like llm-d's standalone
deployment: one listener whose ext_proc filter calls the picker with
request and response bodies in FULL_DUPLEX_STREAMED mode, and an
ORIGINAL_DST cluster that connects to the address in the
``x-gateway-destination-endpoint`` header the picker sets.

``envoy_config(...)`` returns the YAML text; ``subset`` adds Envoy's
set_metadata filter in front of ext_proc to send the subset hint
(``envoy.lb.subset_hint`` / ``x-gateway-destination-endpoint-subset``),
which is how a gateway restricts the picker to part of a pool.

Envoy's ORIGINAL_DST load balancer takes one "ip:port" from the header, so
with this configuration the picker runs with ``--fallbacks 0``; a gateway
that walks a fallback list (the protocol's comma-separated value) reads the
dynamic metadata instead.
"""
from __future__ import annotations

import json
from typing import Optional, Sequence

__all__ = ["envoy_config"]


def envoy_config(listen_port: int, epp_port: int, admin_port: int,
                 subset: Optional[Sequence[str]] = None, host: str = "127.0.0.1",
                 epp_host: str = "127.0.0.1", message_timeout_s: float = 30.0,
                 ext_proc: bool = True) -> str:
    """``ext_proc=False`` leaves the picker out (the client sets the
    destination header itself): the "direct" path of the latency benchmark."""
    q = json.dumps  # YAML accepts JSON scalars
    set_md = ""
    if subset is not None:
        set_md = f"""
          - name: envoy.filters.http.set_metadata
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.set_metadata.v3.Config
              metadata:
              - metadata_namespace: envoy.lb.subset_hint
                value:
                  x-gateway-destination-endpoint-subset: {q(list(subset))}"""
    ep = ""
    if ext_proc:
        ep = f"""
          - name: envoy.filters.http.ext_proc
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor
              grpc_service:
                envoy_grpc: {{cluster_name: epp}}
                timeout: {message_timeout_s}s
              failure_mode_allow: false
              message_timeout: {message_timeout_s}s
              processing_mode:
                request_header_mode: SEND
                response_header_mode: SEND
                request_body_mode: FULL_DUPLEX_STREAMED
                response_body_mode: FULL_DUPLEX_STREAMED
                request_trailer_mode: SEND
                response_trailer_mode: SEND
              metadata_options:
                forwarding_namespaces: {{untyped: [envoy.lb.subset_hint, envoy.lb]}}
                receiving_namespaces: {{untyped: [envoy.lb]}}"""
    return f"""\
admin:
  address: {{socket_address: {{address: {host}, port_value: {admin_port}}}}}
static_resources:
  listeners:
  - name: gateway
    address: {{socket_address: {{address: {host}, port_value: {listen_port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: gateway
          stream_idle_timeout: 300s
          route_config:
            name: pool
            virtual_hosts:
            - name: pool
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: pool, timeout: 300s}}
          http_filters:{set_md}{ep}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: pool
    type: ORIGINAL_DST
    lb_policy: CLUSTER_PROVIDED
    connect_timeout: 2s
    original_dst_lb_config:
      use_http_header: true
      http_header_name: x-gateway-destination-endpoint
    circuit_breakers:
      thresholds:
      - {{max_connections: 100000, max_pending_requests: 100000, max_requests: 100000, max_retries: 100}}
  - name: epp
    type: STATIC
    connect_timeout: 2s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: {{max_concurrent_streams: 100000}}
    circuit_breakers:
      thresholds:
      - {{max_connections: 100000, max_pending_requests: 100000, max_requests: 100000}}
    load_assignment:
      cluster_name: epp
      endpoints:
      - lb_endpoints:
        - endpoint:
            address: {{socket_address: {{address: {epp_host}, port_value: {epp_port}}}}}
"""
