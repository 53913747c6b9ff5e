"""FastAPI calling Keras `model.predict` per request: the article's style of inference."""

import os

import keras
import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel

MODEL_PATH = os.environ["BENCH_MODEL"]  # set by bench/lineup.py
model = keras.Sequential([keras.Input((784,)), keras.layers.TFSMLayer(MODEL_PATH, call_endpoint="serving_default")])
app = FastAPI()


class Request(BaseModel):
    image: list[float]


@app.get("/ready")
def ready() -> dict[str, bool]:
    return {"ready": True}


@app.post("/predict")
def predict(request: Request) -> dict[str, object]:
    probabilities = model.predict(np.asarray([request.image], np.float32), verbose=0)["probabilities"][0]
    return {"digit": int(probabilities.argmax()), "probabilities": probabilities.tolist()}
