"""A FastAPI server for batch-normalized MNIST SavedModels: /predict, TF Serving REST and KServe v2."""

__version__ = "0.1.0"
