"""dlsched-epp: the command line.

    dlsched-epp --endpoints endpoints.yaml [--grpc-port 9002] [--health-port 9003]
                [--metrics-port 9090] [--config SPEC] [--checkpoint PATH]
    dlsched-epp --pool NAME [--namespace NS] ...

Exit status: 0 after SIGTERM/SIGINT (checkpoint saved), 2 for a bad command
line, configuration, endpoints file or checkpoint (the message names it),
1 when a port cannot be bound or --frontend native cannot load its library.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import Any, List, Optional

from .picker import POLICIES, Picker, default_agent_spec

log = logging.getLogger("dlsched.epp")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="dlsched-epp",
                                 description="Endpoint Picker for Gateway API inference gateways "
                                             "(Envoy ext_proc), learning with dlsched")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--endpoints", metavar="FILE",
                     help="llm-d endpoints file (endpoints: [{name, namespace, address, port, labels}]),"
                          " reloaded when replaced")
    src.add_argument("--pool", metavar="NAME", help="InferencePool to serve (Kubernetes discovery)")
    ap.add_argument("--namespace", default=None, help="the pool's namespace (default: the pod's own, "
                                                      "else 'default')")
    ap.add_argument("--grpc-port", type=int, default=9002, help="ext_proc gRPC port (9002)")
    ap.add_argument("--health-port", type=int, default=9003, help="gRPC health port (9003)")
    ap.add_argument("--metrics-port", type=int, default=9090, help="Prometheus port (9090; 0 = off)")
    ap.add_argument("--policy", choices=POLICIES, default="learned",
                    help="learned (dlsched agent with the gateway mix as its guarded hint), "
                         "gateway (the mix alone) or round-robin")
    ap.add_argument("--config", metavar="SPEC", default=None,
                    help="dlsched agent configuration (default: see --print-config)")
    ap.add_argument("--print-config", action="store_true", help="print the default agent spec and exit")
    ap.add_argument("--checkpoint", metavar="PATH", help="load at start when present; save "
                                                         "periodically and at SIGTERM")
    ap.add_argument("--checkpoint-interval-s", type=float, default=60.0)
    ap.add_argument("--discovery-timeout-s", type=float, default=30.0,
                    help="--pool: how long to keep retrying an API server that does not answer "
                         "at start (default 30)")
    ap.add_argument("--max-endpoints", type=int, default=16, help="action slots (16)")
    ap.add_argument("--fallbacks", type=int, default=0,
                    help="fallback endpoints after the primary (0: Envoy's ORIGINAL_DST cluster "
                         "reads one ip:port from the header; raise it for a proxy that walks the list)")
    ap.add_argument("--scrape-interval-ms", type=float, default=50.0)
    ap.add_argument("--stale-ms", type=float, default=1000.0,
                    help="an endpoint without a successful scrape for this long is not ready")
    ap.add_argument("--shed-queue", type=float, default=256.0,
                    help="answer 429 when every eligible endpoint has at least this many waiting")
    ap.add_argument("--slo-ttft-ms", type=float, default=2000.0, help="default TTFT SLO (x-slo-ttft-ms)")
    ap.add_argument("--slo-tpot-ms", type=float, default=100.0, help="default TPOT SLO (x-slo-tpot-ms)")
    ap.add_argument("--frontend", choices=("auto", "native", "python"), default="auto",
                    help="the ext_proc server: native (C++, libdlsched_eppfront.so from make "
                         "epp-native, or $DLSCHED_EPPFRONT_LIBRARY), python (grpc.aio), auto "
                         "(native when it loads; default)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--log-level", default="INFO", type=str.upper,
                    choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
    return ap


def make_agent(args: argparse.Namespace) -> Any:
    """A new agent from --config, or the checkpoint when it exists."""
    import dlsched
    if args.checkpoint and os.path.exists(args.checkpoint):
        try:
            agent = dlsched.Agent.load(args.checkpoint)
        except Exception as e:
            raise ValueError(f"checkpoint {args.checkpoint}: {type(e).__name__}: {e}") from e
        log.info("resumed from checkpoint %s", args.checkpoint)
    else:
        agent = dlsched.Agent(args.config or default_agent_spec(args.max_endpoints, args.seed))
    return agent


def save_checkpoint(agent: Any, path: Optional[str]) -> None:
    if agent is None or not path:
        return
    try:
        agent.save(path)
    except Exception as e:  # a failed save must not stop serving
        log.error("checkpoint %s: %s", path, e)


def main(argv: Optional[List[str]] = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.print_config:
        print(default_agent_spec(args.max_endpoints, args.seed))
        return 0
    if not (args.endpoints or args.pool):
        ap.error("one of the arguments --endpoints --pool is required")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from .discovery import DiscoveryError, FileDiscovery
    from .metrics import EppMetrics
    from .server import serve
    from .signals import Scraper

    stop = threading.Event()  # handlers first: a SIGTERM at any point after this saves and exits 0
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    agent = None
    try:
        if args.endpoints:
            discovery: Any = FileDiscovery(args.endpoints)
        else:
            from .k8s import KubernetesDiscovery  # lazily: the kubernetes client is heavy
            discovery = KubernetesDiscovery(args.pool, namespace=args.namespace,
                                            start_timeout=args.discovery_timeout_s)
        if args.policy == "learned":
            agent = make_agent(args)
        metrics = EppMetrics(agent)
        picker = Picker(max_endpoints=args.max_endpoints, policy=args.policy, agent=agent,
                        scraper=Scraper(interval=args.scrape_interval_ms / 1000.0),
                        fallbacks=args.fallbacks, shed_queue=args.shed_queue,
                        slo_ttft_ms=args.slo_ttft_ms, slo_tpot_ms=args.slo_tpot_ms,
                        stale_s=args.stale_ms / 1000.0, seed=args.seed, metrics=metrics)
    except (DiscoveryError, ValueError, OSError) as e:
        print(f"dlsched-epp: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # dlsched errors (ConfigError, FormatError...) name the culprit
        print(f"dlsched-epp: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    try:
        srv = serve(picker, args.grpc_port, args.health_port, frontend=args.frontend)
        metrics.serving(srv.frontend)
        if args.metrics_port:
            from prometheus_client import start_http_server
            start_http_server(args.metrics_port, registry=metrics.registry)
    except OSError as e:
        print(f"dlsched-epp: {e}", file=sys.stderr)
        return 1
    try:
        discovery.start(picker.set_endpoints)
    except DiscoveryError as e:  # a pool that is missing, access refused: say which
        print(f"dlsched-epp: {e}", file=sys.stderr)
        srv.stop(grace=0)
        picker.scraper.stop()
        return 2
    log.info("serving ext_proc on :%d (%s front end), health on :%d, metrics on :%s, policy %s",
             srv.port, srv.frontend, srv.health_port, args.metrics_port or "off", args.policy)
    while not stop.wait(args.checkpoint_interval_s if agent is not None and args.checkpoint else 3600):
        save_checkpoint(agent, args.checkpoint)
    log.info("stopping")
    discovery.stop()
    srv.stop(grace=2.0)
    picker.scraper.stop()
    save_checkpoint(agent, args.checkpoint)
    if agent is not None:
        agent.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
