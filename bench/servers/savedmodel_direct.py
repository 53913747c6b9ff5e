"""FastAPI calling the SavedModel's serving signature once per request, without batching."""

import os

import numpy as np
import tensorflow as tf
from fastapi import FastAPI
from pydantic import BaseModel

MODEL_PATH = os.environ["BENCH_MODEL"]  # set by bench/lineup.py
signature = tf.saved_model.load(MODEL_PATH).signatures["serving_default"]
app = FastAPI()


class Request(BaseModel):
    image: list[float]


@app.get("/ready")
async def ready() -> dict[str, bool]:
    return {"ready": True}


@app.post("/predict")
async def predict(request: Request) -> dict[str, object]:
    x = tf.constant(np.asarray([request.image], np.float32))
    probabilities = signature(pixels=x)["probabilities"].numpy()[0]
    return {"digit": int(probabilities.argmax()), "probabilities": probabilities.tolist()}
