"""The embedded multi-account AWS: moto on loopback, plus the AWS behaviour moto lacks.

Toolkit code never imports this package's internals; it reaches the sandbox through
mlops_core.backend, which asks sandbox.client for an endpoint and credentials.
"""
