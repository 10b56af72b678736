"""SageMaker pipeline definitions (train, train-with-HPO, inference) and their step scripts."""
