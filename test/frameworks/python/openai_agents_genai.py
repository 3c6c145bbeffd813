"""Scenario: openai-agents with the OpenTelemetry GenAI instrumentation
(opentelemetry-instrumentation-openai-agents-v2), exporting with the OTel SDK
over OTLP/HTTP to nhi-meter. The application wraps the run in its own root
span carrying the principal as `user.id`.

    python openai_agents_genai.py --openai-base-url ... --otlp-url ... --key ... \\
        --mcp-url ... --mcp-token ... --user ... --service ... --spans-out FILE

See scenario_common.py for the arguments and the summary line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import scenario_common  # noqa: E402


def genai_processor(provider):
    """The v2 instrumentation's trace processor, set up as its instrumentor does.

    traceloop-sdk's own opentelemetry-instrumentation-openai-agents installs
    into the same module and may have overwritten this package's __init__.py
    (see test/hardening/requirements.txt). When the entry point is the v2 one
    it is used; otherwise its processor (span_processor.py, v2's alone) is
    built with the arguments and defaults v2's OpenAIAgentsInstrumentor passes.
    """
    import opentelemetry.instrumentation.openai_agents as package

    if hasattr(package, "GenAISemanticProcessor"):
        from agents import set_trace_processors

        set_trace_processors([])  # v2 appends to what is registered: drop the platform exporter first
        package.OpenAIAgentsInstrumentor().instrument(tracer_provider=provider)
        return "opentelemetry-instrumentation-openai-agents-v2 OpenAIAgentsInstrumentor"

    from agents import set_trace_processors
    from opentelemetry.instrumentation.openai_agents.span_processor import ContentCaptureMode, GenAISemanticProcessor
    from opentelemetry.semconv.schemas import Schemas
    from opentelemetry.trace import get_tracer

    tracer = get_tracer("opentelemetry.instrumentation.openai_agents", "", provider, schema_url=Schemas.V1_28_0.value)
    processor = GenAISemanticProcessor(
        tracer=tracer,
        system_name="openai",
        include_sensitive_data=True,
        content_mode=ContentCaptureMode.SPAN_AND_EVENT,
        metrics_enabled=True,
        agent_name_default="OpenAI Agent",
        agent_id_default="agent",
        agent_description_default="OpenAI Agents instrumentation",
        base_url_default="https://api.openai.com",
        server_address_default="api.openai.com",
        server_port_default=443,
    )
    # Exclusive: the SDK's default processor would upload to the OpenAI platform.
    set_trace_processors([processor])
    return "opentelemetry-instrumentation-openai-agents-v2 GenAISemanticProcessor (span_processor.py)"


def scenario(args: argparse.Namespace, summary: dict) -> None:
    from agents.tracing import get_trace_provider
    from opentelemetry import trace

    import openai_agents_app as app

    tracing = scenario_common.own_tracing(args)
    scenario_common.instrument_http_clients(tracing.provider)
    summary["instrumentation"] = genai_processor(tracing.provider)
    summary["agents_trace_processors"] = [type(p).__name__ for p in get_trace_provider()._multi_processor._processors]
    app.configure_model(args)
    ledger = app.ToolLedger()
    tracer = trace.get_tracer("support-desk")
    with tracer.start_as_current_span("support_request", attributes={"user.id": args.user}):
        summary["final_output"] = asyncio.run(app.run_support_request(args, ledger))
    summary["tool_calls"] = ledger.tool_calls
    summary["handoffs"] = ledger.handoffs
    summary.update(tracing.finish(args.spans_out))


def main() -> None:
    scenario_common.run_scenario(__doc__.splitlines()[0], "openai-agents + opentelemetry-instrumentation-openai-agents-v2", scenario)

if __name__ == "__main__":
    main()
