"""A stand-in tool: a spare child imports and calls it before its run arrives (``child.rehearse``)."""


def main(n: int = 1, label: str = "x", ratio: float = 0.5) -> dict:
    return {"n": n, "label": label, "ratio": ratio, "items": [n, label, None, True, ratio]}
