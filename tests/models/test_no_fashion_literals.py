"""No 28x28, 784 or 10-class literal outside the Fashion-MNIST task (issue #11).

Everything else must take shapes from the task (its InputSpec and parameter template), so a
user's task of any shape runs through the daemons, validation, EWC and the strategies.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {Path("models/tasks/fashion_mnist.py"), Path("models/tasks/fashion_mnist_data.py")}
PATTERNS = {
    "28x28": re.compile(r"\b28\s*[,x×*]\s*28\b"),
    "784": re.compile(r"(?<![\w.])784(?![\w.])"),
    "10 classes": re.compile(
        r"NUM_CLASSES\s*=\s*10\b|minlength\s*=\s*10\b|\b10\s+classes\b|,\s*10\)\s*(?:logits)?$"
    ),
}


def _offenders() -> list[str]:
    found = []
    for top in ("models", "daemons"):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if rel in ALLOWED:
                continue
            for lineno, line in enumerate(path.read_text().splitlines(), 1):
                for what, pattern in PATTERNS.items():
                    if pattern.search(line):
                        found.append(f"{rel}:{lineno}: {what}: {line.strip()}")
    return found


def test_no_fashion_mnist_literal_outside_its_task() -> None:
    assert _offenders() == []


def test_the_grep_finds_what_it_looks_for() -> None:
    assert PATTERNS["28x28"].search("x.reshape(-1, 28, 28, 1)")
    assert PATTERNS["784"].search("dense_init(rng, 784, 200)")
    assert PATTERNS["10 classes"].search("NUM_CLASSES = 10")
    assert PATTERNS["10 classes"].search("np.bincount(y, minlength=10)")
    assert not PATTERNS["784"].search("port 17840")
    source = "\n".join((ROOT / path).read_text() for path in ALLOWED)
    assert PATTERNS["784"].search(source) and PATTERNS["28x28"].search(source)
