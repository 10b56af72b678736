"""The sandbox's SageMaker Pipelines engine: executes stored pipeline definitions step by step on this machine.

expressions.py evaluates the definition language (parameters, Get, Join, JsonGet, conditions);
steps.py runs each step type under the execution role's credentials; executor.py schedules the
step graph and reports into the execution model (sandbox/executions.py).
"""
