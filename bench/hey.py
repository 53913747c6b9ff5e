"""`hey`, the load generator: its command line, and what its summary says."""

import re
from pathlib import Path


def command(url: str, body: Path, concurrency: int, seconds: float, *, csv: bool = False) -> list[str]:
    """POST `body` as JSON to `url` from `concurrency` workers for `seconds`; CSV lists every answer."""
    return [
        "hey", "-z", f"{seconds}s", "-c", str(concurrency), "-m", "POST", "-T", "application/json",
        "-D", str(body), "-t", "30", *(["-o", "csv"] if csv else []), url,
    ]  # fmt: skip


def statuses(summary: str) -> dict[int, int]:
    """Responses by HTTP status."""
    return {int(code): int(n) for code, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", summary)}


def errors(summary: str) -> dict[str, int]:
    """Requests that got no response, by the kind of error (the last part of hey's message)."""
    found: dict[str, int] = {}
    if "Error distribution:" in summary:
        for n, message in re.findall(r"\[(\d+)\]\s+(.*)", summary.split("Error distribution:")[1]):
            kind = message.rsplit(":", 1)[-1].strip()
            found[kind] = found.get(kind, 0) + int(n)
    return found


def percentile_ms(summary: str, p: int) -> float:
    match = re.search(rf"{p}% in ([\d.]+) secs", summary)
    return float(match.group(1)) * 1000 if match else float("nan")


def requests_per_second(summary: str) -> float:
    return _seconds_or_rate(r"Requests/sec:\s+([\d.]+)", summary)


def _seconds_or_rate(pattern: str, summary: str) -> float:
    match = re.search(pattern, summary)
    if match is None:
        raise ValueError(f"hey's summary has no {pattern!r}:\n{summary[-500:]}")
    return float(match.group(1))
