"""The adversarial suite runs against the enforcing sandbox with the shipped accounts bootstrapped."""

from tests.iam.conftest import bootstrapped, clean_sandbox, envs, module_sessions  # noqa: F401 (fixtures)
