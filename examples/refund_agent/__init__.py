"""An example agent: refunds through a fake payment system, paused for human approval."""
