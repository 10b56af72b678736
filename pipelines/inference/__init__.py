"""Lambda handler of the inference pipeline (shipped as a zip by the upsert)."""
