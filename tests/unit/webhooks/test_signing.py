import datetime as dt

import pytest
import standardwebhooks

from ehiconnect import signing

BODY = b'{"api_mode":"test","id":"3f9c","type":"webhook.test","data":{}}'


def test_generated_secret_is_whsec_base64_of_32_bytes() -> None:
    secret = signing.generate_secret()
    assert secret.startswith("whsec_")
    assert len(signing.secret_key(secret)) == 32
    assert signing.generate_secret() != secret


def test_standardwebhooks_verifies_our_signature() -> None:
    secret = signing.generate_secret()
    now = int(dt.datetime.now(dt.UTC).timestamp())
    headers = signing.signature_headers("msg_1", now, BODY, [secret])
    parsed = standardwebhooks.Webhook(secret).verify(BODY, headers)
    assert parsed["type"] == "webhook.test"


def test_during_rotation_both_old_and_new_secret_verify() -> None:
    old, new = signing.generate_secret(), signing.generate_secret()
    now = int(dt.datetime.now(dt.UTC).timestamp())
    headers = signing.signature_headers("msg_2", now, BODY, [new, old])
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        standardwebhooks.Webhook(secret).verify(BODY, headers)
        signing.verify(BODY, headers, secret, now=now)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(signing.generate_secret()).verify(BODY, headers)


def test_we_verify_a_standardwebhooks_signature() -> None:
    secret = signing.generate_secret()
    moment = dt.datetime(2026, 11, 29, 3, 0, tzinfo=dt.UTC)
    header = standardwebhooks.Webhook(secret).sign("msg_3", moment, BODY.decode())
    ts = int(moment.timestamp())
    headers = {"Webhook-Id": "msg_3", "Webhook-Timestamp": str(ts), "Webhook-Signature": header}
    signing.verify(BODY, headers, secret, now=ts + 10)
    assert signing.sign("msg_3", ts, BODY, [secret]) == header


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"webhook-id": "other"}, "no signature matches"),
        ({"webhook-timestamp": "1"}, "tolerance"),
        ({"webhook-timestamp": "soon"}, "not Unix seconds"),
        ({"webhook-signature": ""}, "missing"),
    ],
)
def test_verify_rejects_tampered_headers(change: dict[str, str], message: str) -> None:
    secret = signing.generate_secret()
    headers = signing.signature_headers("msg_4", 1_800_000_000, BODY, [secret])
    with pytest.raises(signing.SignatureError, match=message):
        signing.verify(BODY, {**headers, **change}, secret, now=1_800_000_000)


def test_verify_rejects_a_changed_body() -> None:
    secret = signing.generate_secret()
    headers = signing.signature_headers("msg_5", 1_800_000_000, BODY, [secret])
    with pytest.raises(signing.SignatureError):
        signing.verify(BODY + b" ", headers, secret, now=1_800_000_000)


def test_signing_without_a_secret_is_an_error() -> None:
    with pytest.raises(ValueError, match="no active secret"):
        signing.sign("msg", 1, BODY, [])


def test_secret_that_is_not_base64_is_explained() -> None:
    with pytest.raises(ValueError, match="not base64"):
        signing.secret_key("whsec_***")
