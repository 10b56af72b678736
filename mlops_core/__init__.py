"""The toolkit's foundation: environment config, sessions, the backend seam, errors and the CLI kit.

Every other package (iam, pipelines, promote, sandbox) depends on this one; it depends on none of them.
"""
