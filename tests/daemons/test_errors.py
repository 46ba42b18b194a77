"""One root for "refused, with a reason": the models' blob rejections and the daemons' (#12)."""

from __future__ import annotations

import pytest

from daemons.errors import FedchainError, RejectedUpdate
from daemons.ipfs.client import ContentRejected
from daemons.privacy.envelope import EnvelopeRejected
from daemons.runtime.task_setup import TaskMismatch
from models.errors import BlobRejected, NormExceeded, Rejected


@pytest.mark.parametrize(
    "error, reason, detail",
    [
        (NormExceeded("norm 9 > 5"), "norm", "norm 9 > 5"),
        (RejectedUpdate("round_config", "not JSON"), "round_config", "not JSON"),
        (ContentRejected("digest", "sha256 differs", cid="bafy"), "digest", "sha256 differs"),
        (EnvelopeRejected("not_a_recipient"), "not_a_recipient", ""),
        (TaskMismatch("other source"), "task_mismatch", "other source"),
    ],
)
def test_every_rejection_is_one_kind_with_a_reason_and_a_detail(
    error: Rejected, reason: str, detail: str
) -> None:
    assert isinstance(error, Rejected)
    assert (error.reason, error.detail) == (reason, detail)
    assert str(error) == (f"{reason}: {detail}" if detail else reason)


def test_the_daemons_rejections_stay_daemon_errors_and_blob_ones_stay_model_errors() -> None:
    assert isinstance(RejectedUpdate("x"), FedchainError)
    assert not isinstance(NormExceeded("x"), FedchainError)
    assert not isinstance(RejectedUpdate("x"), BlobRejected)
