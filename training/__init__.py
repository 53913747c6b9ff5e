"""Train batch-normalized MNIST networks and publish them as verified SavedModels."""
