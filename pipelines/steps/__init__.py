"""Step scripts: plain argparse programs run in SageMaker containers and locally (see each file)."""
