"""A support agent built on the OpenAI Agents SDK whose refund and email wait for a reviewer."""
