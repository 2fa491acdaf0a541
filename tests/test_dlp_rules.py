"""C19 DLP, rule level: credential formats with their look-alikes, placeholders, the phone
boundary fix and the optional names layer (addresses, organisations, ages, dates, NRP).

Every string here is made up for the test (random-looking values typed or computed below).
"""

from __future__ import annotations

import base64
import json
import time
import zlib
from pathlib import Path

import pytest

from maestro_gateway.guards._dlp_secret_base import base62_crc_ok, is_fake
from maestro_gateway.guards.dlp import Dlp, DlpGuardConfig

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _b62(n: int) -> str:
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = _B62[r] + out
    return out.rjust(6, "0")


def _checksummed(prefix: str, body: str) -> str:
    """A token in the GitHub/npm layout: 30 random characters and their CRC32 in base62."""
    return prefix + body + _b62(zlib.crc32(body.encode()))


BODY = "Qm7xT2vLp9Kd4RwZ8sNc3YhB6gFj1E"  # 30 characters, typed for this test
GH_OK = _checksummed("ghp_", BODY)
GH_BAD = GH_OK[:-1] + ("A" if GH_OK[-1] != "A" else "B")


@pytest.fixture(scope="module")
def dlp(tmp_path_factory: pytest.TempPathFactory) -> Dlp:
    key = tmp_path_factory.mktemp("k") / "k"
    return Dlp(DlpGuardConfig(hmac_key_path=str(key)))


@pytest.fixture(scope="module")
def names(tmp_path_factory: pytest.TempPathFactory) -> Dlp:
    key = tmp_path_factory.mktemp("k") / "k"
    return Dlp(DlpGuardConfig(hmac_key_path=str(key), detect_names=True))


def secrets(d: Dlp, text: str) -> list[tuple[str, str]]:
    return [(f.rule, text[f.start : f.end]) for f in d.findings(text) if f.type == "SECRET"]


def found(d: Dlp, text: str) -> list[tuple[str, str]]:
    return [(f.type, text[f.start : f.end]) for f in d.findings(text)]


def test_github_checksum(dlp: Dlp) -> None:
    """A GitHub token with a valid CRC32 suffix is a secret on its own; one with a bad
    checksum is not flagged in prose, and only at a lower score next to a key word."""
    assert base62_crc_ok(GH_OK)
    assert not base62_crc_ok(GH_BAD)
    assert secrets(dlp, f"pushed with {GH_OK} yesterday") == [("github_token", GH_OK)]
    assert secrets(dlp, f"pushed with {GH_BAD} yesterday") == []
    weak = [f for f in dlp.findings(f"GITHUB_TOKEN={GH_BAD}") if f.type == "SECRET"]
    assert [(f.rule, f.score) for f in weak] == [("github_token", 0.6)]
    assert secrets(dlp, f"pushed with {GH_OK[:-2]} yesterday") == []  # truncated


def test_npm_checksum(dlp: Dlp) -> None:
    """npm tokens use the same CRC32 layout: valid is found, a flipped character is not."""
    ok = _checksummed("npm_", BODY[::-1])
    bad = ok[:-1] + ("A" if ok[-1] != "A" else "B")
    assert secrets(dlp, f"registry auth {ok}") == [("npm_token", ok)]
    assert secrets(dlp, f"registry build {bad}") == []


def test_aws_key_id_and_secret(dlp: Dlp) -> None:
    """An AWS key id is a known prefix plus 16 base32 characters; the secret is exactly 40
    base64 characters in an AWS secret slot. Wrong alphabets, lengths and the documented
    example key are not secrets, and the generic rule does not pick up a wrong-length value."""
    assert secrets(dlp, "id AKIAZ7Q4K2MZRT3XW6PB ok") == [
        ("aws_access_key", "AKIAZ7Q4K2MZRT3XW6PB")
    ]
    for fake in ("AKIAZ7Q4K2MZRT3XW6P", "AKIAz7q4k2mzrt3xw6pb", "AKIA0189K2MZRT3XW6PB",
                 "AKIAIOSFODNN7EXAMPLE"):  # fmt: skip
        assert secrets(dlp, f"id {fake} ok") == [], fake
    secret = "r8Vq2Lm/Tz7Kp4Xw9Nd3Hs6Jc1Bf5Gy0Qa+ZeUo2"
    assert secrets(dlp, f"aws_secret_access_key = {secret}") == [("aws_secret_key", secret)]
    assert secrets(dlp, f"AWS_SECRET_ACCESS_KEY={'3f9a' * 10}c1") == []  # 42 hex characters
    assert secrets(dlp, f"aws_secret_access_key = {'a' * 40}") == []  # placeholder


def test_slack_telegram_stripe_formats(dlp: Dlp) -> None:
    """Slack, Telegram and Stripe tokens need their exact shape; placeholders and short or
    malformed look-alikes are not secrets."""
    slack = "xoxb-5829104736-4820193847561-Hq2Zt8Lw5Nc7Vx3Rk9Mp4Ys6"
    assert secrets(dlp, f"bot {slack}") == [("slack_token", slack)]
    for fake in ("xoxb-xxxxxxxxx-xxxxxxxxxx-xxxxxxxxxxxx", "xoxb-12345-abcd234",
                 "xoxb-0000000000-0000000000000-xxxxxxxxxxxxxxxxxxxxxxxx"):  # fmt: skip
        assert secrets(dlp, f"bot {fake}") == [], fake
    tg = "6038274915:AAHq7Zt2Lw9Nc4Vx8Rk3Mp6Ys1Bf5Gd0Je2"
    assert secrets(dlp, f"bot {tg}") == [("telegram_bot_token", tg)]
    assert secrets(dlp, "bot 6038274915:AAHq7Zt2Lw9Nc4Vx8Rk") == []
    stripe = "sk_live_" + "T4vq9ZmL2xP7kR3nW8cY6hB1"
    assert secrets(dlp, f"charge with {stripe}") == [("stripe_key", stripe)]
    assert secrets(dlp, "charge with sk_live_xxxxxxxxxxxxxxxxxxxxxxxx") == []
    assert secrets(dlp, "charge with sk_live_4eC39Hq") == []  # too short


def test_key_blocks_and_jwts(dlp: Dlp) -> None:
    """A PEM private key block with BEGIN/END is a secret, a public key is not; a JWT needs a
    JSON header with alg and a JSON payload."""
    pem = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBq3Zt8x\nq9W2\n-----END EC PRIVATE KEY-----"
    assert secrets(dlp, pem) == [("private_key", pem)]
    assert secrets(dlp, "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZI\n-----END PUBLIC KEY-----") == []

    def seg(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    jwt = f"{seg({'alg': 'RS256', 'typ': 'JWT'})}.{seg({'sub': 'u1', 'iat': 1})}.c2lnbmF0dXJl"
    assert secrets(dlp, f"token {jwt}") == [("jwt", jwt)]
    no_alg = f"{seg({'typ': 'JWT'})}.{seg({'sub': 'u1'})}.c2lnbmF0dXJl"
    assert secrets(dlp, f"value {no_alg}") == []


def test_connection_strings_and_passwords(dlp: Dlp) -> None:
    """Passwords in URLs, netrc lines, code comparisons and sentences are secrets; variables
    and placeholders in the same places are not."""
    assert secrets(dlp, "DATABASE_URL=postgres://app:Vq7xL2pZ9k@db.internal:5432/orders") == [
        ("connection_string", "Vq7xL2pZ9k")
    ]
    for fake in ("postgres://app:${DB_PASS}@db/x", "postgres://app:<password>@db/x",
                 "mysql://root:xxxxxxxx@db/x"):  # fmt: skip
        assert secrets(dlp, fake) == [], fake
    assert secrets(dlp, "REDIS_URL=redis://:Vq7xL2pZ9kTr@cache:6379/0") == [
        ("connection_string", "Vq7xL2pZ9kTr")
    ]
    jdbc = "jdbc:mysql://db.local:3306/app?user=svc&password=Hq7vX2pLm9&ssl=true"
    assert secrets(dlp, jdbc) == [("connection_string", "Hq7vX2pLm9")]
    netrc = "machine api.example.net login deploy password Hq7vX2pLm9"
    assert secrets(dlp, netrc) == [("netrc_password", "Hq7vX2pLm9")]
    assert secrets(dlp, 'if password == "Tr0ub4dor&3":') == [("code_credential", "Tr0ub4dor&3")]
    assert secrets(dlp, 'if password == "":') == []
    prose = "The password for the build account is 'kP9vLq2x'."
    assert secrets(dlp, prose) == [("password_assignment", "kP9vLq2x")]
    assert secrets(dlp, "Choose a strong password combination.") == []
    assert secrets(dlp, "In this form the password is 'required'.") == []


def test_generic_key_context(dlp: Dlp) -> None:
    """A random value after an api_key/token/secret key counts in env, JSON (escaped too), XML
    and YAML shapes; placeholders, calls, prose words and values carrying another provider's
    prefix do not."""
    value = "Zx9kQ2mP7vL4nR8tY3wB6cF1"
    for text in (f"api_key: {value}", f'{{"service_token": "{value}"}}',
                 f'{{\\"service_token\\": \\"{value}\\"}}', f"<apiToken>{value}</apiToken>",
                 f"CLIENT_SECRET='{value}'"):  # fmt: skip
        assert secrets(dlp, text) == [("high_entropy", value)], text
    for text in ('api_key: "your-api-key-here"', "api_key = xxxxxxxxxxxxxxxxxxxx",
                 "token = getTokenFromEnvironment()", "api_key: <YOUR_API_KEY>",
                 "apikey: hvs.Qm7xT2vLp9Kd4RwZ8sNc3YhB6gFj1E",
                 "secret = 1234567890abcdefgh"):  # fmt: skip
        assert secrets(dlp, text) == [], text


def test_more_prefixed_formats(dlp: Dlp) -> None:
    """Format-true prefixed tokens (GitLab families with their own lengths, OpenShift, 1Password,
    Salesforce consumer keys, Hugging Face org tokens) are found; a GitLab pipeline token with
    a non-hex body or one character short is not."""
    ptt = "glptt-" + "3f9a8c7e6d5b4a3928171615141312111f0e0d0c"
    agent = "glagent-" + "Qm7xT2vLp9Kd4RwZ8sNc3YhB6gFj1EQm7xT2vLp9Kd4RwZ8sNc"
    oshift = "sha256~" + "Qm7xT2vLp9Kd4RwZ8sNc3YhB6gFj1E_Zx9kQ2mP7vL4"
    sf = "3MVG9" + "Zx9kQ2mP7vL4nR8tY3wB6cF1Hq7vX2pLm9TzU5eW1aQ.dE3rT6yU8iO0pA2s"
    hf = "api_org_" + "Zx9kQ2mP7vL4nR8tY3wB6cF1Hq7vX2pLm9"
    for token, rule_id in ((ptt, "gitlab_token"), (agent, "gitlab_token"),
                           (oshift, "openshift_token"), (sf, "salesforce_token"),
                           (hf, "huggingface_token")):  # fmt: skip
        assert secrets(dlp, f"value {token} end") == [(rule_id, token)], token
    assert secrets(dlp, "value glptt-" + "z" * 20 + "3f9a8c7e6d5b4a392817 end") == []
    assert secrets(dlp, f"value {ptt[:-1]} end") == []


def test_key_names_about_a_secret_are_not_secret_slots(dlp: Dlp) -> None:
    """Keys that name something about a secret (its id, name, URL) or a non-secret key
    (public, CSRF, partition) do not make their value a secret."""
    value = "Zx9kQ2mP7vL4nR8tY3wB6cF1"
    for key in ("api_key_id", "secret_name", "token_url", "public_key", "csrf_token",
                "partition_key"):  # fmt: skip
        assert secrets(dlp, f"{key} = {value}") == [], key
    assert secrets(dlp, f"signing_key = {value}") == [("high_entropy", value)]


def test_placeholders() -> None:
    """Placeholder values are recognised: EXAMPLE, runs of x, angle-bracket names, one
    character repeated, consecutive digits; random values are not placeholders."""
    for fake in ("AKIAIOSFODNN7EXAMPLE", "xxxxxxxxxxxx", "<your-key>", "aaaaaaaaaaaa",
                 "sk_1234567890", "${TOKEN}"):  # fmt: skip
        assert is_fake(fake), fake
    assert not is_fake("Zx9kQ2mP7vL4nR8tY3wB6cF1")


def test_phone_after_comma_without_digit(dlp: Dlp) -> None:
    """A number right after a comma is a phone candidate (a fax after "Office,"), but digit
    groups of a thousands-separated amount are not."""
    assert found(dlp, "Office: 085 175 7641 (desk),0301234567 fax") == [
        ("PHONE_NUMBER", "085 175 7641"),
        ("PHONE_NUMBER", "0301234567"),
    ]
    assert found(dlp, "revenue 1,234,567,890 units") == []


def test_names_layer_is_off_by_default(dlp: Dlp) -> None:
    """Without detect_names no name, address, organisation, age or date is reported."""
    text = "Ana Lima, 34 years old, lives at 12 Harbour Street and works for Quantel Systems."
    assert found(dlp, text) == []


def test_names_layer_addresses(names: Dlp) -> None:
    """Streets with their house numbers (English suffix, Germanic compound, prefix form), the
    units and a whole inline address are STREET_ADDRESS."""
    inline = "Send it to 221 Baker Street, Apt. 4, London, United Kingdom."
    assert ("STREET_ADDRESS", "221 Baker Street, Apt. 4, London, United Kingdom") in found(
        names, inline
    )
    assert ("STREET_ADDRESS", "Hauptstraße 12") in found(names, "Lieferung an Hauptstraße 12")
    assert ("STREET_ADDRESS", "Rua das Flores 88") in found(names, "Mora na Rua das Flores 88")
    assert ("STREET_ADDRESS", "PSC 4821, Box 3390\nAPO AE 09012") in found(
        names, "Mail: PSC 4821, Box 3390\nAPO AE 09012"
    )
    assert [t for t, _ in found(names, "Order 4521 shipped with 12 boxes.")] == []


def test_names_layer_people_orgs_and_more(names: Dlp) -> None:
    """People after name phrases (even unlisted names), firms by company word or partner
    shape, ages, dates, years in context, nationalities and honorifics are found; a common
    word at a sentence start is not a person."""
    got = found(names, "My name is Zbigniewa Qworth and I am 34.")
    assert ("PERSON", "Zbigniewa Qworth") in got
    assert ("AGE", "34") in got
    assert ("ORGANIZATION", "Quantel Systems") in found(names, "She works for Quantel Systems.")
    assert ("ORGANIZATION", "Smith, Johnson and Brown") in found(
        names, "Smith, Johnson and Brown is a law firm."
    )
    got = found(names, "Founded in 1998, the meeting moved to 2024-03-05 14:30 on Friday.")
    assert {
        ("DATE_TIME", "1998"),
        ("DATE_TIME", "2024-03-05 14:30"),
        ("DATE_TIME", "Friday"),
    } <= set(got)
    assert ("NRP", "Norwegian") in found(names, "a Norwegian engineer")
    assert ("TITLE", "Dr.") in found(names, "Ask Dr. Okafor about it.")
    assert ("LOCATION", "Kvalnesby") in found(names, "Last week we flew to Kvalnesby.")
    assert [t for t, _ in found(names, "Will it rain? Mark the date.")] == []


def test_config_accepts_names_layer_types(tmp_path: Path) -> None:
    """The names layer's types are valid in ``types`` and ``actions``."""
    cfg = DlpGuardConfig(
        hmac_key_path=str(tmp_path / "k"),
        detect_names=True,
        types=["STREET_ADDRESS", "ORGANIZATION"],
        actions={"STREET_ADDRESS": "mask"},
    )
    d = Dlp(cfg)
    assert [t for t, _ in found(d, "Ana Lima lives at 12 Harbour Street.")] == ["STREET_ADDRESS"]


def test_names_layer_hostile_input_is_linear(names: Dlp) -> None:
    """Text built to make the names rules work hard (capitalised runs, street, unit and company
    words, address blocks, "the corner of" on one endless line) scans in linear time: 300 KB
    of each shape well under the bound (a quadratic line search took minutes per megabyte)."""
    shapes = (
        "Rua Das Flores Ana Lima 12 Street Inc, Mr Smith and Jones 1998 Suite 4 ",
        "12 Baker Street\n Suite 4\n London\n United Kingdom 12345\n",
        "the corner of Søndergade 52 and ",
    )
    started = time.perf_counter()
    for shape in shapes:
        names.findings((shape * 20_000)[:300_000])
    assert time.perf_counter() - started < 20


def test_names_layer_never_displaces_identifiers(names: Dlp) -> None:
    """Where a names-layer span (a street here, scored 0.9) overlaps a validated card number
    (0.8), the card is kept: validated identifiers and secrets come first."""
    text = "Ship to 4111 1111 1111 1111 Harbour Street"
    assert ("CREDIT_CARD", "4111 1111 1111 1111") in found(names, text)
