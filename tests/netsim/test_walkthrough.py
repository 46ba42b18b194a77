"""The walkthrough reader: tagged ```sh blocks of docs/deployment.md, in order, dedented."""

from __future__ import annotations

import pytest

from tests.netsim.walkthrough import read_steps

DOC = """
1. **Org host**: start.

   <!-- walkthrough host=org name=start background -->
   ```sh
   fedchain org run \\
     --config org.toml
   ```

```sh
echo untagged blocks are prose
```

<!-- walkthrough host=client name=check -->
```sh
fedchain status
```
"""


def test_tagged_blocks_in_order_dedented(tmp_path) -> None:
    path = tmp_path / "doc.md"
    path.write_text(DOC)
    steps = read_steps(path)
    assert [(s.host, s.name, s.background) for s in steps] == [
        ("org", "start", True),
        ("client", "check", False),
    ]
    assert steps[0].script == "fedchain org run \\\n  --config org.toml"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("no blocks here", "no walkthrough blocks"),
        ("<!-- walkthrough name=x -->\n```sh\ntrue\n```\n", "needs host= and name="),
        ("<!-- walkthrough host=a name=x -->\n```sh\ntrue\n```\n" * 2, "names repeat"),
    ],
)
def test_a_malformed_walkthrough_is_an_error(tmp_path, doc: str, message: str) -> None:
    path = tmp_path / "doc.md"
    path.write_text(doc)
    with pytest.raises(ValueError, match=message):
        read_steps(path)


def test_the_deployment_doc_names_only_hosts_the_multihost_test_has() -> None:
    steps = read_steps()
    assert {s.host for s in steps} <= {"all", "chain", "org", "client", "partner"}
    assert any("fedchain init" in s.script for s in steps)
    assert any("--peer" in s.script and s.host == "client" for s in steps)
