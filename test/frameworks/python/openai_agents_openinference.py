"""Scenario: openai-agents with OpenInference's instrumentation
(openinference-instrumentation-openai-agents), exporting with the OTel SDK
over OTLP/HTTP to nhi-meter. The principal is set the OpenInference way,
with `using_user` around the run (the `user.id` attribute); there is no
application span.

    python openai_agents_openinference.py --openai-base-url ... --otlp-url ... --key ... \\
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


def scenario(args: argparse.Namespace, summary: dict) -> None:
    from agents.tracing import get_trace_provider
    from openinference.instrumentation import using_user
    from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor

    import openai_agents_app as app

    tracing = scenario_common.own_tracing(args)
    scenario_common.instrument_http_clients(tracing.provider)
    # exclusive_processor (its default, spelled out): replaces the SDK's
    # default processor, which would upload traces to the OpenAI platform.
    OpenAIAgentsInstrumentor().instrument(tracer_provider=tracing.provider, exclusive_processor=True)
    summary["instrumentation"] = "openinference-instrumentation-openai-agents OpenAIAgentsInstrumentor"
    summary["agents_trace_processors"] = [type(p).__name__ for p in get_trace_provider()._multi_processor._processors]
    app.configure_model(args)
    ledger = app.ToolLedger()
    with using_user(args.user):
        summary["final_output"] = asyncio.run(app.run_support_request(args, ledger))
    summary["tool_calls"] = ledger.tool_calls
    summary["handoffs"] = ledger.handoffs
    summary.update(tracing.finish(args.spans_out))


def main() -> None:
    scenario_common.run_scenario(__doc__.splitlines()[0], "openai-agents + openinference-instrumentation-openai-agents", scenario)

if __name__ == "__main__":
    main()
