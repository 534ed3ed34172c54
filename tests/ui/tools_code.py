"""The tools the UI tests deploy (as source text)."""

from __future__ import annotations

FORM_TOOL = '''
import os
import time
from pathlib import Path
from typing import Literal


def main(count: int, word: str = "hi", mode: Literal["fast", "slow"] = "fast", loud: bool = False,
         tags: list[str] = [], ratio: float = 0.5, delay: float = 0.0) -> dict:
    """Prints ``word`` count times and writes a CSV, an HTML file and a text file."""
    for i in range(count):
        print(f"line {i} {word.upper() if loud else word}", flush=True)
        if delay:
            time.sleep(delay)
    out = Path(os.environ.get("RUNYARD_OUTPUT_DIR", "runyard-output"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.csv").write_text("name,value\\n<b>x</b>,1\\ny,2\\n")
    (out / "page.html").write_text("<script>alert(1)</script>")
    (out / "notes.txt").write_text("plain <i>notes</i>")
    return {"count": count, "mode": mode, "tags": tags, "ratio": ratio}
'''

SLEEPER = '''
import time


def main(seconds: float = 60.0) -> str:
    """Sleeps."""
    print("sleeping", flush=True)
    time.sleep(seconds)
    return "woke"
'''

HOSTILE = '''
def main(x: int = 1) -> str:
    """<script>alert("description")</script><img src=x onerror=alert(2)>"""
    print("<script>alert('log')</script>", flush=True)
    return "<b>bold</b>"
'''

MANY_LINES = '''
def main(lines: int = 10000) -> int:
    """Prints many lines."""
    for i in range(lines):
        print(f"log line {i:05d}")
    return lines
'''
