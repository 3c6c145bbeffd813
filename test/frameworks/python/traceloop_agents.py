"""Scenario: traceloop-sdk (OpenLLMetry) exporting to nhi-meter through
Traceloop.init's own OTLP/HTTP exporter. The support desk is written the way
traceloop's docs show an agent app: a `@workflow` that runs a `@agent`
triage agent, which calls `@tool` functions through the OpenAI client (chat
completions, to the loopback stub) and hands off to a `@agent` billing agent
in the same trace by calling it. The billing agent's MCP tools are `@tool`
functions that call the MCP server with the `mcp` Python client, one session
per call. The principal is an association property (`user_id`).

    python traceloop_agents.py --openai-base-url ... --otlp-url ... --key ... \\
        --mcp-url ... --mcp-token ... --user ... --service ... --spans-out FILE

See scenario_common.py for the arguments and the summary line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any, Awaitable, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import scenario_common  # noqa: E402

TRIAGE = "triage_agent"
BILLING = "billing_agent"
MODEL = "stub-model"
HANDOFF_TOOL = f"transfer_to_{BILLING}"


def function_schema(name: str, description: str, properties: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat-completions tool definition with string parameters."""
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": {key: {"type": "string", "description": text} for key, text in properties.items()}, "required": list(properties)},
        },
    }


class SupportDesk:
    """The agents, their tools, and what each agent called (as the app saw it)."""

    def __init__(self, args: Any) -> None:
        from openai import AsyncOpenAI
        from traceloop.sdk.decorators import agent, tool

        self.args = args
        self.client = AsyncOpenAI(base_url=scenario_common.loopback_only(args.openai_base_url), api_key="sk-nhi-meter-test-dummy", max_retries=0, timeout=scenario_common.REQUEST_TIMEOUT_SECONDS)
        self.tool_calls: dict[str, list[dict[str, str]]] = {}
        self.handoffs: list[dict[str, str]] = []
        self.mcp_tools: list[str] = []

        @tool(name="lookup_customer")
        def lookup_customer(customer_id: str) -> str:
            return f"customer {customer_id}: plan=pro, status=active"

        @tool(name="issue_refund")
        def issue_refund(customer_id: str, amount: str) -> str:
            return f"refunded {amount} to {customer_id}"

        self.triage_tools: dict[str, Callable[..., Any]] = {"lookup_customer": lookup_customer}
        self.triage_schemas = [
            function_schema("lookup_customer", "Looks a customer up by id.", {"customer_id": "the customer's id"}),
            function_schema(HANDOFF_TOOL, f"Hands the conversation to {BILLING}.", {}),
        ]
        self.billing_tools: dict[str, Callable[..., Any]] = {"issue_refund": issue_refund}
        self.billing_schemas = [function_schema("issue_refund", "Issues a refund to a customer.", {"customer_id": "the customer's id", "amount": "the amount"})]

        desk = self

        @agent(name=BILLING)
        async def billing_agent(history: list[dict[str, Any]]) -> str:
            return await desk.agent_loop(BILLING, f"You are {BILLING}. Refund customers and check their invoices with your tools.", history, desk.billing_tools, desk.billing_schemas)

        @agent(name=TRIAGE)
        async def triage_agent(question: str) -> str:
            return await desk.agent_loop(TRIAGE, f"You are {TRIAGE}. Look customers up, then hand billing questions to {BILLING}.", [{"role": "user", "content": question}], desk.triage_tools, desk.triage_schemas)

        self.billing_agent = billing_agent
        self.triage_agent = triage_agent

    async def discover_mcp_tools(self) -> None:
        """Offers the billing agent every tool the MCP server lists, each as a traceloop @tool."""
        from traceloop.sdk.decorators import tool

        listed = await self.mcp_session(lambda session: session.list_tools())
        for listed_tool in listed.tools:
            name = listed_tool.name
            self.mcp_tools.append(name)
            self.billing_tools[name] = tool(name=name)(self.mcp_caller(name))
            self.billing_schemas.append({"type": "function", "function": {"name": name, "description": listed_tool.description or name, "parameters": listed_tool.input_schema}})

    def mcp_caller(self, name: str) -> Callable[..., Awaitable[str]]:
        """A function that calls one MCP tool, so it can be a traceloop @tool of that name."""

        async def call_mcp(**arguments: Any) -> str:
            result = await self.mcp_session(lambda session: session.call_tool(name, arguments))
            if result.is_error:
                raise RuntimeError(f"MCP tool {name} failed: {result.content}")
            return json.dumps([block.model_dump(mode="json", exclude_none=True) for block in result.content])

        return call_mcp

    async def mcp_session(self, use: Callable[[Any], Awaitable[Any]]) -> Any:
        """One MCP session over Streamable HTTP, with the agent's bearer token and timeouts."""
        import httpx2
        from mcp import ClientSession
        from mcp.client.streamable_http import streamable_http_client

        timeout = scenario_common.REQUEST_TIMEOUT_SECONDS
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {self.args.mcp_token}"}, timeout=httpx2.Timeout(timeout), follow_redirects=False) as http:
            async with streamable_http_client(scenario_common.loopback_only(self.args.mcp_url), http_client=http) as (read, write):
                async with ClientSession(read, write, read_timeout_seconds=timeout) as session:
                    await session.initialize()
                    return await use(session)

    async def agent_loop(self, name: str, instructions: str, history: list[dict[str, Any]], tools: dict[str, Callable[..., Any]], schemas: list[dict[str, Any]]) -> str:
        """Asks the model, runs the tools it calls, until it answers (or hands off)."""
        messages = [{"role": "system", "content": instructions}, *[m for m in history if m.get("role") != "system"]]
        for _ in range(6):
            completion = await self.client.chat.completions.create(model=MODEL, messages=messages, tools=schemas)
            message = completion.choices[0].message
            if not message.tool_calls:
                return message.content or ""
            messages.append(message.model_dump(mode="json", exclude_none=True))
            for call in message.tool_calls:
                arguments = json.loads(call.function.arguments or "{}")
                if call.function.name == HANDOFF_TOOL:
                    self.handoffs.append({"from": name, "to": BILLING})
                    messages.append({"role": "tool", "tool_call_id": call.id, "content": f"transferred to {BILLING}"})
                    return await self.billing_agent(messages)
                implementation = tools.get(call.function.name)
                if implementation is None:
                    raise RuntimeError(f"{name} was asked to call {call.function.name}, which it does not have")
                output = implementation(**arguments)
                if asyncio.iscoroutine(output):
                    output = await output
                self.tool_calls.setdefault(name, []).append({"tool": call.function.name, "call_id": call.id})
                messages.append({"role": "tool", "tool_call_id": call.id, "content": str(output)})
        raise RuntimeError(f"{name} did not finish in 6 model turns")


def count_exports() -> scenario_common.CountingExporter:
    """Counts what the receiver took from traceloop's own exporter (the one
    Traceloop.init built for api_endpoint), by wrapping it where its batch
    processor holds it: the batch processor drops export errors silently."""
    from traceloop.sdk import Traceloop

    processor = Traceloop._Traceloop__tracer_wrapper._TracerWrapper__spans_processor  # type: ignore[attr-defined]
    batch = processor._batch_processor
    counter = scenario_common.CountingExporter(batch._exporter)
    batch._exporter = counter
    return counter


def scenario(args: argparse.Namespace, summary: dict) -> None:
    from opentelemetry import trace
    from traceloop.sdk import Traceloop
    from traceloop.sdk.decorators import workflow
    from traceloop.sdk.instruments import Instruments

    receiver = scenario_common.loopback_only(args.otlp_url).removesuffix("/v1/traces")
    Traceloop.init(
        app_name=args.service,
        api_endpoint=receiver,  # Traceloop appends /v1/traces
        headers={"Authorization": f"Bearer {args.key}"},
        disable_batch=False,
        telemetry_enabled=False,
        should_enrich_metrics=False,
        # This app does not use the OpenAI Agents SDK; instrumenting it would
        # create that SDK's default trace provider, whose processor uploads to
        # the OpenAI platform.
        block_instruments={Instruments.OPENAI_AGENTS},
    )
    provider = trace.get_tracer_provider()
    memory = scenario_common.memory_copy(provider)
    counter = count_exports()
    scenario_common.instrument_http_clients(provider)
    desk = SupportDesk(args)

    @workflow(name="support_request")
    async def support_request(question: str) -> str:
        Traceloop.set_association_properties({"user_id": args.user})
        await desk.discover_mcp_tools()
        return await desk.triage_agent(question)

    async def run() -> str:
        return await asyncio.wait_for(support_request("Customer c-1 was charged twice for c-2's plan; please refund it."), timeout=60)

    summary["final_output"] = asyncio.run(run())
    summary["tool_calls"] = desk.tool_calls
    summary["handoffs"] = desk.handoffs
    summary["mcp_tools"] = desk.mcp_tools
    tracing = scenario_common.Tracing(provider, memory, counter)
    summary.update(tracing.finish(args.spans_out))


def main() -> None:
    scenario_common.run_scenario(__doc__.splitlines()[0], "traceloop-sdk", scenario)

if __name__ == "__main__":
    main()
