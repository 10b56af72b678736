"""Account bootstrap: least-privilege roles, KMS keys, buckets and the registry group, as data."""
