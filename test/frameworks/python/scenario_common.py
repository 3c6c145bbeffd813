"""What the Python agent-framework scenarios share: their command line, a
guard that keeps every connection on loopback, a watchdog so no run hangs,
the OpenTelemetry pipeline to nhi-meter's receiver (with a copy of every span
kept for the test), and the JSON summary printed on stdout.

Every scenario script takes:

    --openai-base-url URL   the loopback OpenAI stub (http://127.0.0.1:PORT/v1)
    --otlp-url URL          nhi-meter's receiver (http://127.0.0.1:PORT/v1/traces)
    --key KEY               a key with ingest:write, sent as Authorization: Bearer
    --mcp-url URL           the MCP tool server (http://127.0.0.1:PORT/mcp)
    --mcp-token TOKEN       the bearer token the MCP server knows the caller by
    --user ID               the principal the agents act for
    --service NAME          service.name of the run
    --spans-out FILE        where to write every finished span as JSON

and prints one JSON line: the tool calls each agent made (as the framework
reported them), the handoffs, the trace ids, the spans finished and exported,
and any connection the guard refused. It exits 1 on any error.
"""

from __future__ import annotations

import argparse
import faulthandler
import ipaddress
import json
import os
import socket
import sys
import threading
from typing import Any, Callable, Iterable
from urllib.parse import urlparse

# The whole run, SDK start-up and export included, must end well within this;
# past it every thread's stack is printed and the process exits (no hang).
WATCHDOG_SECONDS = 90
# Per request: model calls, MCP calls, OTLP exports.
REQUEST_TIMEOUT_SECONDS = 10


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--openai-base-url", required=True)
    parser.add_argument("--otlp-url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--mcp-url", required=True)
    parser.add_argument("--mcp-token", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--spans-out", required=True)
    return parser.parse_args()


def start_watchdog() -> None:
    """Exits the process with every thread's stack if the run takes too long."""
    faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True)


def offline_environment(args: argparse.Namespace) -> None:
    """Points every SDK default that could reach a vendor cloud at loopback or off.

    Set before the SDKs are imported, since some read their environment once.
    """
    os.environ["OPENAI_BASE_URL"] = args.openai_base_url
    os.environ["OPENAI_API_KEY"] = "sk-nhi-meter-test-dummy"
    # openai-agents' own trace export (to the OpenAI platform) is replaced by
    # set_trace_processors in each scenario; tracing itself must stay on, or
    # the OpenTelemetry bridges see nothing.
    os.environ.pop("OPENAI_AGENTS_DISABLE_TRACING", None)
    os.environ["TRACELOOP_TELEMETRY"] = "false"
    os.environ["TRACELOOP_METRICS_ENABLED"] = "false"
    os.environ["TRACELOOP_LOGGING_ENABLED"] = "false"
    os.environ["TRACELOOP_TRACE_CONTENT"] = "true"
    for name in ("TRACELOOP_BASE_URL", "TRACELOOP_API_KEY", "TRACELOOP_HEADERS", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        os.environ.pop(name, None)
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"


class NetworkGuard:
    """Refuses, through an audit hook, every connection and name lookup that
    is not loopback, and remembers it: an SDK default we failed to override
    shows up as a failure in the summary, not as traffic."""

    def __init__(self) -> None:
        self.refused: list[str] = []
        self._lock = threading.Lock()

    def install(self) -> None:
        sys.addaudithook(self._hook)

    def _refuse(self, what: str) -> None:
        with self._lock:
            self.refused.append(what)
        raise ConnectionRefusedError(f"network guard: refused {what}; tests must stay on loopback")

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if event == "socket.connect":
            address = args[1]
            if isinstance(address, tuple) and address and not _is_loopback(str(address[0])):
                self._refuse(f"connect {address[0]}:{address[1] if len(address) > 1 else ''}")
        elif event == "socket.getaddrinfo":
            host = args[0]
            if isinstance(host, bytes):
                host = host.decode("ascii", "replace")
            if host is not None and not _is_loopback(str(host)):
                self._refuse(f"lookup {host}")


def _is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Tracing:
    """An OpenTelemetry SDK pipeline that batches to nhi-meter's receiver
    over OTLP/HTTP protobuf and keeps a copy of every finished span."""

    def __init__(self, provider: Any, memory: Any, counter: "CountingExporter | None") -> None:
        self.provider = provider
        self.memory = memory
        self.counter = counter

    def finish(self, spans_out: str) -> dict[str, Any]:
        """Flushes everything to the receiver and writes the span copy; returns the export figures."""
        self.provider.force_flush(30_000)
        spans = list(self.memory.get_finished_spans())
        self.provider.shutdown()
        with open(spans_out, "w", encoding="utf-8") as out:
            json.dump([span_record(span) for span in spans], out, indent=1)
        figures: dict[str, Any] = {"spans_finished": len(spans), "trace_ids": sorted({format(s.context.trace_id, "032x") for s in spans})}
        if self.counter is not None:
            figures.update(spans_exported=self.counter.exported, spans_failed=self.counter.failed)
        return figures


def own_tracing(args: argparse.Namespace, resource_attributes: dict[str, Any] | None = None) -> Tracing:
    """Sets up the global TracerProvider the way an application does, sending to the receiver."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    counter = CountingExporter(OTLPSpanExporter(endpoint=args.otlp_url, headers={"Authorization": f"Bearer {args.key}"}, timeout=REQUEST_TIMEOUT_SECONDS))
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": args.service, **(resource_attributes or {})}))
    provider.add_span_processor(BatchSpanProcessor(counter, schedule_delay_millis=200))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    trace.set_tracer_provider(provider)
    return Tracing(provider, memory, counter)


def memory_copy(provider: Any) -> Any:
    """Adds an in-memory copy of every span to a provider someone else built (traceloop's)."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return memory


def instrument_http_clients(provider: Any | None = None) -> None:
    """Client spans and W3C traceparent on every httpx2 request: the MCP
    client (mcp 2.x) and the OpenAI client (openai 3.x) both use httpx2, so
    the MCP server's spans join the calling agent's trace."""
    from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor

    kwargs = {"tracer_provider": provider} if provider is not None else {}
    HTTPX2ClientInstrumentor().instrument(**kwargs)


def span_record(span: Any) -> dict[str, Any]:
    """A finished span as the test reads it (the shape of scenario.ts' SpanShape, plus the resource)."""
    parent = span.parent
    return {
        "name": span.name,
        "kind": span.kind.value,
        "traceId": format(span.context.trace_id, "032x"),
        "spanId": format(span.context.span_id, "016x"),
        "parentSpanId": format(parent.span_id, "016x") if parent is not None else None,
        "status": span.status.status_code.name,
        "scope": span.instrumentation_scope.name if span.instrumentation_scope else None,
        "attributes": {key: _jsonable(value) for key, value in (span.attributes or {}).items()},
        "resource": {key: _jsonable(value) for key, value in span.resource.attributes.items()},
        "startTimeUnixNano": span.start_time,
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Iterable):
        return [_jsonable(v) for v in value]
    return str(value)


class CountingExporter:
    """Delegates to the real exporter and counts what the receiver took."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.lock = threading.Lock()
        self.exported = 0
        self.failed = 0

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        result = self.inner.export(spans)
        with self.lock:
            if result == SpanExportResult.SUCCESS:
                self.exported += len(spans)
            else:
                self.failed += len(spans)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def loopback_only(url: str) -> str:
    """Refuses a URL that is not on loopback, before any SDK sees it."""
    host = urlparse(url).hostname or ""
    if not _is_loopback(host):
        raise SystemExit(f"{url} is not a loopback URL; the scenarios run offline")
    return url


def report(summary: dict[str, Any], guard: NetworkGuard) -> None:
    """Prints the summary as the last line of stdout and exits 1 if anything went wrong."""
    summary["refused_connections"] = list(guard.refused)
    failed = bool(guard.refused) or bool(summary.get("spans_failed")) or bool(summary.get("error"))
    sys.stdout.flush()
    print(json.dumps(summary, sort_keys=True), flush=True)
    # os._exit: SDK shutdown hooks (atexit) already ran what matters, and a
    # stray non-daemon thread must not keep the process alive.
    os._exit(1 if failed else 0)


def run_scenario(description: str, scenario: str, body: Callable[[argparse.Namespace, dict[str, Any]], None]) -> None:
    """Runs one scenario offline: parses the arguments, arms the watchdog and
    the network guard, lets `body(args, summary)` do the work and fill the
    summary, and reports it; any failure is reported too, and exits 1."""
    args = parse_args(description)
    start_watchdog()
    offline_environment(args)
    guard = NetworkGuard()
    guard.install()
    summary: dict[str, Any] = {"scenario": scenario}
    try:
        body(args, summary)
    except BaseException as error:  # noqa: BLE001 - every failure is reported, then exit 1
        import traceback

        traceback.print_exc()
        summary["error"] = f"{type(error).__name__}: {error}"
    report(summary, guard)
