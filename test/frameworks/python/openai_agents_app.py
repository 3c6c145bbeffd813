"""The support desk both openai-agents scenarios run, whatever bridges its
traces to OpenTelemetry: a triage agent that looks customers up with a
function tool and hands off to a billing agent, which issues a refund with a
function tool and calls the MCP tool server's tools. One run is one trace.

The model is the loopback stub (Responses API); what it answers, and so which
tools each agent calls, is the test's plan. Every failure raises: function
and MCP tools are built without a failure function, so a tool error ends the
run instead of becoming a message to the model.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

TRIAGE = "triage_agent"
BILLING = "billing_agent"
MODEL = "stub-model"


class ToolLedger:
    """The tool calls and handoffs the framework itself reported (RunHooks), per agent."""

    def __init__(self) -> None:
        self.tool_calls: dict[str, list[dict[str, str]]] = {}
        self.handoffs: list[dict[str, str]] = []

    def hooks(self) -> Any:
        from agents import RunHooks

        ledger = self

        class Hooks(RunHooks):
            async def on_tool_end(self, context: Any, agent: Any, tool: Any, result: Any) -> None:
                ledger.tool_calls.setdefault(agent.name, []).append({"tool": tool.name, "call_id": getattr(context, "tool_call_id", "")})

            async def on_handoff(self, context: Any, from_agent: Any, to_agent: Any) -> None:
                ledger.handoffs.append({"from": from_agent.name, "to": to_agent.name})

        return Hooks()


def configure_model(args: argparse.Namespace) -> None:
    """Every model request goes to the stub, with no retries and a short timeout."""
    from agents import set_default_openai_api, set_default_openai_client
    from openai import AsyncOpenAI

    from scenario_common import REQUEST_TIMEOUT_SECONDS, loopback_only

    client = AsyncOpenAI(base_url=loopback_only(args.openai_base_url), api_key="sk-nhi-meter-test-dummy", max_retries=0, timeout=REQUEST_TIMEOUT_SECONDS)
    # use_for_tracing=False: this key is no tracing key, and the platform
    # exporter is removed anyway (set_trace_processors in each scenario).
    set_default_openai_client(client, use_for_tracing=False)
    set_default_openai_api("responses")


def build_agents(mcp_server: Any) -> Any:
    """The triage agent (which hands off to billing) and the billing agent."""
    from agents import Agent, function_tool

    @function_tool(failure_error_function=None)
    def lookup_customer(customer_id: str) -> str:
        """Looks a customer up by id."""
        return f"customer {customer_id}: plan=pro, status=active"

    @function_tool(failure_error_function=None)
    def issue_refund(customer_id: str, amount: str) -> str:
        """Issues a refund to a customer."""
        return f"refunded {amount} to {customer_id}"

    billing = Agent(
        name=BILLING,
        instructions=f"You are {BILLING}. Refund customers and check their invoices with your tools.",
        model=MODEL,
        tools=[issue_refund],
        mcp_servers=[mcp_server],
    )
    triage = Agent(
        name=TRIAGE,
        instructions=f"You are {TRIAGE}. Look customers up, then hand billing questions to {BILLING}.",
        model=MODEL,
        tools=[lookup_customer],
        handoffs=[billing],
    )
    return triage


def mcp_server(args: argparse.Namespace) -> Any:
    """The MCP tool server over Streamable HTTP, with the agent's bearer token."""
    from agents.mcp import MCPServerStreamableHttp

    from scenario_common import REQUEST_TIMEOUT_SECONDS, loopback_only

    return MCPServerStreamableHttp(
        params={
            "url": loopback_only(args.mcp_url),
            "headers": {"Authorization": f"Bearer {args.mcp_token}"},
            "timeout": REQUEST_TIMEOUT_SECONDS,
            "sse_read_timeout": REQUEST_TIMEOUT_SECONDS,
        },
        name="support-tools",
        cache_tools_list=True,
        client_session_timeout_seconds=REQUEST_TIMEOUT_SECONDS,
        failure_error_function=None,
    )


async def run_support_request(args: argparse.Namespace, ledger: ToolLedger) -> str:
    """One customer request, start to finish: one agents trace."""
    from agents import Runner

    server = mcp_server(args)
    async with server:
        triage = build_agents(server)
        result = await asyncio.wait_for(
            Runner.run(triage, "Customer c-1 was charged twice for c-2's plan; please refund it.", hooks=ledger.hooks(), max_turns=8),
            timeout=60,
        )
    return str(result.final_output)
