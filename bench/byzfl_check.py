"""ByzFL's side of the cross-check in crates/fl-cli/tests/byzfl.rs.

Reads a JSON file of cases (each: a ByzFL aggregator or attack, its parameters, the input
vectors, and optionally pre-aggregation steps applied first), applies ByzFL (PyPI `byzfl`) to
each on numpy float64 arrays, and writes the outputs as JSON. Usage: python3 bench/byzfl_check.py CASES.json OUT.json
"""

import json
import sys
from importlib.metadata import version

import numpy as np
import byzfl


def build(value):
    """A parameter value: {"$byzfl": name, "params": {...}} is a ByzFL object, lists and
    other values as they are."""
    if isinstance(value, dict) and "$byzfl" in value:
        params = {k: build(v) for k, v in value["params"].items()}
        return getattr(byzfl, value["$byzfl"])(**params)
    if isinstance(value, list):
        return [build(v) for v in value]
    return value


def main():
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    out = []
    for case in cases:
        cls = getattr(byzfl, case["byzfl"])
        x = np.array(case["vectors"], dtype=np.float64)
        for name, params in case.get("pre", []):
            x = np.asarray(getattr(byzfl, name)(**params)(x))
        params = {k: build(v) for k, v in case["params"].items()}
        out.append([float(v) for v in np.asarray(cls(**params)(x))])
    with open(sys.argv[2], "w") as f:
        json.dump({"byzfl": version("byzfl"), "outputs": out}, f)


if __name__ == "__main__":
    main()
