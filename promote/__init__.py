"""Promotion: cross-account sessions, the central registry, pipeline upsert, Terraform, approvals."""
