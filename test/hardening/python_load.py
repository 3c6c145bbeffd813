"""Sends a known number of spans to an OTLP/HTTP endpoint with the
OpenTelemetry Python SDK (BatchSpanProcessor + OTLPSpanExporter,
HTTP/protobuf), the way a Python service instrumented for nhi-meter does.

    python python_load.py --endpoint URL --spans N --service NAME --nhi-id ID [--header 'Authorization=Bearer ...']

Prints one JSON line: spans created, spans the exporter reported exported
and failed. Exits 1 if any export failed.
"""

import argparse
import json
import sys
import threading

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind


class CountingExporter(SpanExporter):
    """Delegates to the real exporter and counts what it reports."""

    def __init__(self, inner):
        self.inner = inner
        self.lock = threading.Lock()
        self.exported = 0
        self.failed = 0

    def export(self, spans):
        result = self.inner.export(spans)
        with self.lock:
            if result == SpanExportResult.SUCCESS:
                self.exported += len(spans)
            else:
                self.failed += len(spans)
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis=30000):
        return True


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--spans", type=int, required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--nhi-id", required=True)
    parser.add_argument("--header", action="append", default=[])
    args = parser.parse_args()

    headers = dict(h.split("=", 1) for h in args.header)
    exporter = CountingExporter(OTLPSpanExporter(endpoint=args.endpoint, headers=headers, timeout=30))
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": args.service, "nhi.id": args.nhi_id, "nhi.type": "service_account", "nhi.owner": "team-hardening"}
        )
    )
    # A queue that holds every span: the SDK drops spans when its queue is
    # full, and this script measures the receiver, not the SDK's queue.
    processor = BatchSpanProcessor(exporter, max_queue_size=args.spans + 1, max_export_batch_size=512, schedule_delay_millis=200)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("nhi-meter-hardening-python", "1.0.0")

    for i in range(args.spans):
        kind = SpanKind.SERVER if i % 2 == 0 else SpanKind.INTERNAL
        with tracer.start_as_current_span(
            "python.load",
            kind=kind,
            attributes={"nhi.activity.type": "tool_invocation", "nhi.activity.name": f"tool-{i % 7}", "nhi.credential.id": "cred-python"},
        ):
            pass

    provider.force_flush(timeout_millis=120000)
    provider.shutdown()
    print(json.dumps({"created": args.spans, "exported": exporter.exported, "failed": exporter.failed}))
    sys.exit(1 if exporter.failed else 0)


if __name__ == "__main__":
    main()
