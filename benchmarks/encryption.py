"""What encrypting updates costs: seal (client) and open (org) against the org's validation.

Usage: .venv/bin/python benchmarks/encryption.py [--model 2nn] [--auditors 1] [--repeats 9]
A real update blob of the model (params + Fisher, as an EWC federation sends) is sealed to the
org and `--auditors` auditor keys, then opened with the org's key; the reference is what the
org does to every update anyway, `validate_blob`. Runs alternate seal / open / validate so
background load hits all alike; the median is reported. Ratios > 1: slower than validation.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="2nn", choices=("logreg", "2nn", "cnn"))
    parser.add_argument("--auditors", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()

    import jax
    from nacl.public import PrivateKey

    from daemons.org.model_step import update_template
    from daemons.privacy.envelope import Binding, open_update, seal_update
    from models.codec import BlobMetadata, encode_blob
    from models.networks import get_model
    from models.training import params_to_numpy
    from models.validation import Limits, validate_blob

    params = params_to_numpy(get_model(args.model).init(jax.random.PRNGKey(0)))
    client = "0x" + "11" * 20
    meta = BlobMetadata("update", 1, client, "bafybase", 100, args.model)
    fisher = jax.tree_util.tree_map(lambda a: a * a, params)  # a Fisher is >= 0
    blob = encode_blob({"params": params, "fisher": fisher}, meta)
    org = PrivateKey.generate()
    recipients = [org.public_key] + [PrivateKey.generate().public_key for _ in range(args.auditors)]
    binding = Binding(1, client, "bafybase")
    envelope = seal_update(blob, binding, recipients)
    template = update_template(params, "ewc")
    expected = {"kind": "update", "round_id": 1, "client": client, "base_cid": "bafybase"}
    limits = Limits(max_bytes=len(envelope) * 2)
    times: dict[str, list[float]] = {"seal": [], "open": [], "validate": []}
    for _ in range(args.repeats):
        times["seal"].append(_timed(lambda: seal_update(blob, binding, recipients)))
        times["open"].append(_timed(lambda: open_update(envelope, org, binding, 1 << 30)))
        times["validate"].append(_timed(lambda: validate_blob(blob, template, expected, limits)))
    med = {k: statistics.median(v) for k, v in times.items()}
    overhead = len(envelope) - len(blob)
    print(f"model {args.model}: update {len(blob)} bytes, envelope +{overhead} bytes")
    for name, seconds in med.items():
        print(f"  {name:9s} {seconds * 1e3:8.2f} ms (median of {args.repeats})")
    print(f"RESULT seal_over_validate {med['seal'] / med['validate']:.3f} ratio")
    print(f"RESULT open_over_validate {med['open'] / med['validate']:.3f} ratio")
    print(f"RESULT envelope_overhead {overhead} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
