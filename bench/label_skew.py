"""`python -m bench.label_skew`: two replicas of one repository, a label moved on the first; how long until
the second answers the label with the new version, and what a client addressing the label on the second
got meanwhile (20 requests a second). Once watching the repository for changes, once polling every 5 s.
"""

import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

import httpx

from tests.e2e.server import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "models" / "mnist" / "3"


def measure(root: Path, *, watch: bool, poll_interval_s: float) -> dict[str, object]:
    models = root / "models" / "mnist"
    shutil.copytree(DEFAULT, models / "1")
    (models / "labels.json").write_text('{"stable": 1}')
    settings = {
        "poll_interval_s": poll_interval_s,
        "watch_repository": str(watch).lower(),
        "admin_token": "t",
        "access_log": "false",
        "grpc_enabled": "false",
    }
    with (
        ServerProcess(root / "models", root / "a.log", **settings) as first,
        ServerProcess(root / "models", root / "b.log", **settings) as second,
    ):
        statuses: dict[int, int] = {}
        stop = threading.Event()

        def client() -> None:
            with httpx.Client(base_url=second.url) as http:
                while not stop.is_set():
                    answer = http.post("/predict", json={"image": [0] * 784, "label": "stable"})
                    statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
                    time.sleep(0.05)

        thread = threading.Thread(target=client)
        thread.start()
        staging = models / ".staging"
        shutil.copytree(DEFAULT, staging)
        staging.rename(models / "2")  # published as mnist-train does: whole, at once
        while _state(first.url, 2) != "AVAILABLE":
            time.sleep(0.05)
        moved = time.monotonic()
        answer = httpx.put(
            f"{first.url}/admin/models/mnist/labels/stable", json={"version": 2}, headers={"authorization": "Bearer t"}
        )
        answer.raise_for_status()
        while httpx.get(f"{second.url}/models").json()["labels_served"]["mnist"].get("stable") != 2:
            time.sleep(0.01)
        skew = time.monotonic() - moved
        time.sleep(1)
        stop.set()
        thread.join()
    return {"watching": watch, "poll_interval_s": poll_interval_s, "skew_s": round(skew, 3), "statuses": statuses}


def _state(url: str, version: int) -> str | None:
    found = httpx.get(f"{url}/v1/models/mnist/versions/{version}").json().get("model_version_status", [{}])
    state: str | None = found[0].get("state")
    return state


def main() -> int:
    for watch, poll in ((True, 60.0), (False, 5.0)):
        with tempfile.TemporaryDirectory() as root:
            print(json.dumps(measure(Path(root), watch=watch, poll_interval_s=poll)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
