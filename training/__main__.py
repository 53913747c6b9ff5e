import os
import sys

# NOTE: set before TensorFlow is imported, or its C++ start-up chatter drowns the CLI's output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from training.cli import main

sys.exit(main())
