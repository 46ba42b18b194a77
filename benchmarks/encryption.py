"""What encryption costs: updates sealed to the org, models sealed to the members.

Usage: .venv/bin/python benchmarks/encryption.py [--model 2nn] [--auditors 1] [--members 10]
       [--repeats 9]
Updates: a real update blob of the model (params + Fisher, as an EWC federation sends) is
sealed to the org and `--auditors` auditor keys, then opened with the org's key; the
reference is what the org does to every update anyway, `validate_blob`.
Models (`[encryption] models = "members"`): a model blob (params + Fisher) is sealed to the
org, `--members` member keys and the auditors, then opened with a member's key; the
reference is the codec's `encode_blob` of that model, which the org runs for every model.
Runs alternate so background load hits all alike; the median is reported. Ratios > 1:
slower than the reference.
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
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()

    import jax
    from nacl.public import PrivateKey

    from daemons.org.model_step import update_template
    from daemons.privacy.envelope import Binding, open_update, seal_update
    from daemons.privacy.models import open_model, seal_model
    from models.codec import BlobMetadata, encode_blob
    from models.tasks.fashion_mnist import get_model
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
    contract = "0x" + "22" * 20
    model_meta = BlobMetadata("model", 1, "0x" + "33" * 20, "bafybase", 100, args.model)
    model_sections = {"params": params, "fisher": fisher}
    model_blob = encode_blob(model_sections, model_meta)
    member = PrivateKey.generate()
    others = [PrivateKey.generate().public_key for _ in range(max(args.members - 1, 0))]
    readers = [*recipients, member.public_key, *others]
    sealed_model = seal_model(model_blob, 1, "bafybase", contract, readers)
    names = ("seal", "open", "validate", "model_seal", "model_open", "model_encode")
    times: dict[str, list[float]] = {k: [] for k in names}
    for _ in range(args.repeats):
        times["seal"].append(_timed(lambda: seal_update(blob, binding, recipients)))
        times["open"].append(_timed(lambda: open_update(envelope, org, binding, 1 << 30)))
        times["validate"].append(_timed(lambda: validate_blob(blob, template, expected, limits)))
        times["model_seal"].append(
            _timed(lambda: seal_model(model_blob, 1, "bafybase", contract, readers))
        )
        times["model_open"].append(
            _timed(lambda: open_model(sealed_model, member, contract, 1 << 30))
        )
        times["model_encode"].append(_timed(lambda: encode_blob(model_sections, model_meta)))
    med = {k: statistics.median(v) for k, v in times.items()}
    overhead = len(envelope) - len(blob)
    model_overhead = len(sealed_model) - len(model_blob)
    print(f"model {args.model}: update {len(blob)} bytes, envelope +{overhead} bytes")
    print(
        f"model blob {len(model_blob)} bytes sealed to {len(readers)} keys "
        f"(org, {args.auditors} auditor(s), {args.members} members): +{model_overhead} bytes"
    )
    for name, seconds in med.items():
        print(f"  {name:12s} {seconds * 1e3:8.2f} ms (median of {args.repeats})")
    print(f"RESULT seal_over_validate {med['seal'] / med['validate']:.3f} ratio")
    print(f"RESULT open_over_validate {med['open'] / med['validate']:.3f} ratio")
    print(f"RESULT envelope_overhead {overhead} bytes")
    print(f"RESULT model_seal_over_encode {med['model_seal'] / med['model_encode']:.3f} ratio")
    print(f"RESULT model_open_over_encode {med['model_open'] / med['model_encode']:.3f} ratio")
    print(f"RESULT model_seal_ms {med['model_seal'] * 1e3:.2f} ms")
    print(f"RESULT model_open_ms {med['model_open'] * 1e3:.2f} ms")
    print(f"RESULT model_envelope_overhead {model_overhead} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
