# ruff: noqa: E501 (one rule per line: the table reads as a table)
"""DLP secret rules: key blocks, JWTs, cloud and source-hosting token formats, password hashes,
credentials in connection strings and command lines, and high-entropy values in key-like
context (SaaS formats: ``_dlp_secrets_saas``; the rule machinery: ``_dlp_secret_base``).

Every finding has type ``SECRET`` and a rule id naming the kind. Rules with a fixed, rare
prefix (``AKIA``, ``ghp_``, ``xoxb-``…) need no context but must have the format's exact
length and alphabet, and its checksum where it has one (GitHub and npm tokens: CRC32 in
base62; a token failing it counts only next to a key word, at a lower score). Values found
only by context (``password = …``, ``api_key: …``) must pass ``looks_like_secret`` (entropy,
character classes, no placeholder / variable / function call); the generic key-context rule
leaves values carrying a provider prefix (``hvs.``, ``ghp_``…) and AWS secret slots to the
provider's own rule, so a truncated or malformed token is not caught by the back door.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from maestro_gateway.guards._dlp_secret_base import (
    ASSIGN,
    KEY,
    KEY_WORDS,
    VALUE,
    B,
    E,
    Q,
    SecretRule,
    base62_crc_ok,
    basic_auth,
    is_fake,
    password,
    pem_b64,
    rule,
    url_password,
    varied,
)  # fmt: skip
from maestro_gateway.guards._dlp_secrets_saas import SAAS_RULES
from maestro_gateway.guards._dlp_validators import (
    PLACEHOLDER,
    is_jwt,
    looks_like_secret,
    shannon_entropy,
)
from maestro_gateway.scanning import Finding

__all__ = ["SECRET_RULES", "SecretRule", "find_secrets"]

_WORD = re.compile(r"[A-Za-z0-9_]")
_NEAR_BEFORE, _NEAR_AFTER = 120, 40
_KEYWORDS = r"token|secret|passw|auth|api[_ -]?key|credential|pat\b|github|npm"
_PREFIXED = re.compile(
    r"(?:gh[pousr]_|github_pat_|gl(?:pat|dt|rt|ptt|soat)-|xox[a-z]-|hv[sbr]\.|[sr]k_(?:live|test)_"
    r"|sk-(?:ant|proj)-|npm_|pypi-|dckr_pat_|AKIA|ASIA|SG\.|AIza|ya29\.|GOCSPX-|shp(?:at|ca|pa|ss)_"
    r"|do[opr]_v1_|glsa_|glc_|sntry[su]_|xkeysib-|lin_api_|pscale_|hf_|r8_|gsk_|figd_|pnu_)"
)


_PROSE_WORD = re.compile(r"[A-Za-z][a-z]*[.!?,;:]*")


def _generic(value: str) -> bool:
    """The key-context rule's check: a secret-looking value with no provider prefix, not a
    word ending a sentence ("password combination.")."""
    return (
        looks_like_secret(value)
        and _PREFIXED.match(value) is None
        and _PROSE_WORD.fullmatch(value) is None
    )


_DESCRIPTIONS = frozenset((
    "required", "optional", "hidden", "empty", "blank", "invalid", "incorrect", "wrong", "correct",
    "weak", "strong", "expired", "masked", "encrypted", "hashed", "unset", "default", "changed",
    "reset", "missing", "valid", "same", "different", "sensitive",
))  # fmt: skip
"""Words that describe a password rather than give it ("the password is 'required'")."""


def _literal(value: str) -> bool:
    """A quoted literal a program or a sentence gives as the password: short ones count."""
    return (
        len(value) >= 4
        and value.lower() not in _DESCRIPTIONS
        and not PLACEHOLDER.search(value)
        and not is_fake(value)
    )


def _aws_secret(value: str) -> bool:
    return (
        any(c.isupper() for c in value) and any(c.islower() for c in value)
        and any(c.isdigit() for c in value) and shannon_entropy(value) >= 4.2
    )  # fmt: skip


_AWS_SLOT = r"aws[\w.-]{0,20}secret[\w.-]{0,30}[\"'`]?\s*(?:=>|:=|[:=]|\s)\s*[\"'`]?"
_NOT_A_SECRET_KEY = (
    r"(?:(?:key|token|secret|passw(?:or)?d|pwd)[_.-]?(?:ids?|names?|version|url|uri|endpoint"
    r"|length|size|file|path|type|field|header|param|prefix|format|label|count|ttl|expir\w*"
    r"|timeout|alias|arn)|(?:public|publishable|csrf|xsrf|primary|foreign|sort|partition|cache"
    r"|idempotency)[_.-]?(?:key|token))[\"'`]?\s*(?:=>|:=|[:=>]|\s)\s*\\?[\"'`]?"
)
_NOT_GENERIC = f"(?:{_AWS_SLOT}|-----\\s*|{_NOT_A_SECRET_KEY})"
"""Before a value the key-context rule leaves alone: an AWS secret slot (the AWS rule knows
the format), PEM armour ("-----BEGIN PUBLIC KEY-----") and keys that name something about a
secret rather than the secret (``token_url``, ``key_id``, ``secret_name``, ``public_key``,
``csrf_token``, ``partition_key``)."""

CORE_RULES: tuple[SecretRule, ...] = (
    # --- key blocks and structured tokens
    rule("private_key", r"-----BEGIN[ A-Z0-9]{0,32}PRIVATE KEY(?: BLOCK)?-----[A-Za-z0-9+/=\s:,.\\\"'+-]{0,16384}?(?:-----END[ A-Z0-9]{0,32}PRIVATE KEY(?: BLOCK)?-----|$)", trigger=r"-----BEGIN[ A-Z0-9]{0,32}PRIVATE KEY", fake_check=False),
    rule("private_key", r"PuTTY-User-Key-File-\d: [\s\S]{0,4096}?Private-Lines: \d+[\sA-Za-z0-9+/=]{20,}", trigger="PuTTY-User-Key-File-", fake_check=False),
    rule("private_key", r"LS0tLS1CRUdJTi[A-Za-z0-9+/=]{40,}", 0, pem_b64, fake_check=False),
    rule("private_key", r"(?i:PrivateKey|PresharedKey)\s*=\s*([A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=)(?![A-Za-z0-9+/=])", 1, varied(4.0)),  # WireGuard
    rule("age_secret_key", B + r"AGE-SECRET-KEY-1[02-9ACDEFGHJKLMNPQRSTUVWXYZ]{58}" + E),
    rule("jwt", B + r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{0,1024}" + E, 0, is_jwt, fake_check=False),
    # --- cloud providers
    rule("aws_access_key", B + r"(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z2-7]{16}" + E, 0, varied(3.0)),
    rule("aws_secret_key", r"(?i:aws[\w.-]{0,20}?secret[\w.-]{0,20}?)" + ASSIGN + r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])", 1, varied(4.0)),
    rule("aws_secret_key", B + r"[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])", 0, _aws_secret, 0.85, trigger=r"(?i)aws|akia|asia", near=r"aws|akia|asia"),
    rule("aws_session_token", r"(?i:aws[\w.-]{0,8}session[\w.-]{0,8}token)" + ASSIGN + r"([A-Za-z0-9/+=]{100,})", 1, fake_check=False),
    rule("aws_account_id", r"(?i:aws[\w.-]{0,8}account[\w.-]{0,8}(?:id|number))" + ASSIGN + r"(\d{12})" + E, 1, score=0.8),
    rule("aws_arn", B + r"arn:aws[a-z-]{0,12}:[a-z0-9-]{2,32}:[a-z0-9-]{0,20}:\d{12}:[\w/:.+=@-]{1,256}", score=0.7, fake_check=False),
    rule("alibaba_key", B + r"LTAI[A-Za-z0-9]{20}" + E, 0, varied(3.5)),
    rule("tencent_key", B + r"AKID[A-Za-z0-9]{32}" + E, 0, varied(3.8)),
    rule("gcp_api_key", B + r"AIza[0-9A-Za-z_-]{35}" + E),
    rule("gcp_oauth_token", B + r"ya29\.[0-9A-Za-z_-]{30,}" + E),
    rule("gcp_oauth_secret", B + r"GOCSPX-[0-9A-Za-z_-]{28}" + E),
    rule("gcp_client_id", B + r"\d{6,14}-[a-z0-9]{32}\.apps\.googleusercontent\.com", score=0.7),
    rule("gcp_service_account", r'"private_key_id"\s*:\s*"([a-f0-9]{40})"', 1),
    rule("azure_storage_key", r"(?i:AccountKey|SharedAccessKey)\s*=\s*([A-Za-z0-9+/]{40,}={0,2})", 1, varied(4.0)),
    rule("azure_storage_key", r"(?i:account[_-]?key|storage[_-]?key)" + ASSIGN + r"([A-Za-z0-9+/]{86}==)", 1, varied(4.0)),
    rule("azure_sas_token", r"[?&]sig=([A-Za-z0-9%+/]{40,}={0,2}|[A-Za-z0-9%]{40,})", 1),
    rule("azure_app_config", r"Endpoint=https://[\w.-]+\.azconfig\.io;Id=[\w+/=:-]{4,};Secret=([A-Za-z0-9+/]{20,}={0,2})", 1),
    rule("azure_client_secret", B + r"[A-Za-z0-9_~.-]{3}\dQ~[A-Za-z0-9_~.-]{31,34}" + r"(?![A-Za-z0-9_~.-])", 0, varied(3.8)),
    rule("azure_devops_pat", r"(?i:ado|azure|devops|vsts|pat)[\w.-]{0,20}" + ASSIGN + r"([a-z2-7]{52})" + E, 1, varied(3.5)),
    rule("azure_devops_pat", B + r"[A-Za-z0-9]{76}AZDO[A-Za-z0-9]{4}" + E, 0, varied(4.0)),
    rule("azure_insights_key", r"InstrumentationKey=([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})", 1, lambda s: len(set(s)) > 4),
    rule("digitalocean_token", B + r"do[opr]_v1_[a-f0-9]{64}" + E),
    rule("heroku_key", B + r"HRKU-[A-Za-z0-9_-]{60}" + E),
    rule("heroku_key", r"(?i:heroku[\w.-]{0,20}(?:key|token))" + ASSIGN + r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})", 1),
    rule("flyio_token", B + r"(?:fo1_[A-Za-z0-9_-]{43}|fm[12][ar]?_[A-Za-z0-9+/]{100,}={0,3})" + E, 0, varied(4.0)),
    rule("cloudflare_token", B + r"v1\.0-[a-f0-9]{24}-[a-f0-9]{146}" + E),  # origin CA key
    rule("openshift_token", B + r"sha256~[A-Za-z0-9_-]{43}" + E, 0, varied(3.5)),
    rule("yandex_key", B + r"(?:AQVN[A-Za-z0-9_-]{35,38}|YC[A-Za-z0-9_-]{38}|t1\.[A-Za-z0-9_-]+={0,2}\.[A-Za-z0-9_-]{86}={0,2})" + E, 0, varied(3.5), trigger=r"(?i)yandex", near=r"yandex"),
    rule("onepassword_key", B + r"(?:A3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}|ops_eyJ[A-Za-z0-9+/]{250,}={0,3})" + E, 0, varied(3.5)),
    rule("clickhouse_key", B + r"4b1d[A-Za-z0-9]{38}" + E, 0, varied(3.5)),
    rule("supabase_token", B + r"sbp_[a-f0-9]{40}" + E),
    rule("pulumi_token", B + r"pul-[a-f0-9]{40}" + E),
    rule("terraform_token", B + r"[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,70}" + E),
    rule("cloudflare_token", r"(?i:cloudflare|cf)[\w.-]{0,20}(?:token|key)" + ASSIGN + r"([A-Za-z0-9_-]{40})" + E, 1, varied(4.0)),
    rule("vault_token", B + r"hv[sbr]\.[A-Za-z0-9_-]{90,}" + E, 0, varied(3.5)),
    rule("vault_token", r"(?i:vault[\w.-]{0,20}token)" + ASSIGN + r"(s\.[A-Za-z0-9]{24})" + E, 1),
    rule("planetscale_token", B + r"pscale_(?:tkn|pw|oauth)_[A-Za-z0-9_.-]{32,64}" + E),
    rule("kubernetes_bootstrap_token", r"(?i:token|kubeadm|bootstrap)[\w.-]{0,20}" + ASSIGN + r"([a-z0-9]{6}\.[a-z0-9]{16})" + E, 1, lambda s: looks_like_secret(s.replace(".", ""), 3.0)),
    # --- source hosting, CI, package registries
    rule("github_token", B + r"gh[pousr]_[A-Za-z0-9]{36}" + E, 0, base62_crc_ok),
    rule("github_token", B + r"gh[pousr]_[A-Za-z0-9]{36}" + E, 0, lambda s: varied(3.5)(s) and not base62_crc_ok(s), 0.6, near=_KEYWORDS),
    rule("github_token", B + r"github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}" + E),
    rule("github_client_id", B + r"Iv1\.[a-f0-9]{16}" + E, score=0.7),
    rule("github_secret", r"(?i:git(?:hub)?[\w.-]{0,20}secret[\w.-]{0,10})" + ASSIGN + r"([a-f0-9]{40})" + E, 1, varied(3.3)),
    rule("github_secret", r"(?i:clientSecret|client_secret)" + ASSIGN + r"([a-f0-9]{40})" + E, 1, varied(3.3), near=r"gitalk|gitment|github"),
    rule("gitlab_token", B + r"(?:glpat|gldt|glrt|glsoat|glffct|glft)-[A-Za-z0-9_-]{20}" + E, 0, varied(3.0)),
    rule("gitlab_token", B + r"(?:glptt-[a-f0-9]{40}|glimt-[A-Za-z0-9_-]{25}|glagent-[A-Za-z0-9_-]{50}|gloas-[A-Za-z0-9_-]{64}|glcbt-[A-Za-z0-9]{1,5}_[A-Za-z0-9_-]{20})" + E, 0, varied(3.0)),
    rule("gitlab_token", B + r"glrt-t\d_[A-Za-z0-9_-]{27,300}\.[0-9a-z]{2}[0-9a-z]{7}" + E),
    rule("gitlab_token", r"_gitlab_session=([0-9a-z]{32})" + E, 1, varied(3.0)),
    rule("gitlab_token", B + r"glpat-[A-Za-z0-9_-]{27,300}\.[0-9a-z]{2}\.?[0-9a-z]{7,9}" + E),
    rule("gitlab_token", B + r"GR1348941[A-Za-z0-9_-]{20}" + E),
    rule("bitbucket_app_password", B + r"ATBB[A-Za-z0-9_=.-]{28,}" + E),
    rule("atlassian_token", B + r"ATATT3[A-Za-z0-9_=-]{150,}" + E),
    rule("npm_token", B + r"npm_[A-Za-z0-9]{36}" + E, 0, base62_crc_ok),
    rule("npm_token", B + r"npm_[A-Za-z0-9]{36}" + E, 0, lambda s: varied(3.5)(s) and not base62_crc_ok(s), 0.6, near=_KEYWORDS),
    rule("pypi_token", B + r"pypi-AgE[A-Za-z0-9_-]{50,}"),
    rule("rubygems_key", B + r"rubygems_[a-f0-9]{48}" + E),
    rule("nuget_key", B + r"oy2[a-z0-9]{43}" + E, 0, varied(3.5)),
    rule("crates_token", B + r"cio[A-Za-z0-9]{32}" + E, 0, varied(3.8)),
    rule("clojars_token", B + r"CLOJARS_[a-z0-9]{60}" + E),
    rule("docker_hub_token", B + r"dckr_pat_[A-Za-z0-9_-]{27}" + E),
    rule("artifactory_key", B + r"AKC[a-zA-Z0-9]{10,}" + E, 0, lambda s: len(s) >= 64 and shannon_entropy(s) > 4),
    rule("artifactory_key", B + r"cmVmdGtuOjAxOj[A-Za-z0-9]{40,}" + E),  # JFrog reference token
    rule("sonarqube_token", B + r"sq[upa]_[a-f0-9]{40}" + E),
    rule("sonarqube_token", r"(?i:sonar[\w.-]{0,20}(?:token|login))" + ASSIGN + r"([a-f0-9]{40})" + E, 1, varied(3.3)),
    rule("sourcegraph_token", B + r"sgp_(?:[a-f0-9]{16}_|local_)?[a-f0-9]{40}" + E),
    rule("databricks_token", B + r"dapi[a-f0-9]{32}(?:-\d)?" + E, 0, varied(3.3)),
    rule("doppler_token", B + r"dp\.(?:pt|st|ct|sa|scim|audit)\.[A-Za-z0-9]{40,44}" + E),
    rule("grafana_token", B + r"(?:glc_[A-Za-z0-9+/]{32,400}={0,2}|glsa_[A-Za-z0-9]{32}_[a-f0-9]{8}|eyJrIjoi[A-Za-z0-9+/]{40,}={0,2})"),
    # --- password hashes
    rule("password_hash", r"\$2[abxy]?\$\d{2}\$[./A-Za-z0-9]{53}", fake_check=False),
    rule("password_hash", r"\$1\$[./A-Za-z0-9]{1,8}\$[./A-Za-z0-9]{22}", fake_check=False),
    rule("password_hash", r"\$[56]\$(?:rounds=\d{1,9}\$)?[./A-Za-z0-9]{1,16}\$[./A-Za-z0-9]{43,86}", fake_check=False),
    rule("password_hash", r"\$krb5asrep\$23\$[^\s:$]{1,128}:[a-fA-F0-9]{32}\$[a-fA-F0-9]{64,}", fake_check=False),
    # --- credentials in connection strings, URLs, headers, command lines and code
    rule("connection_string", r"\b[A-Za-z][A-Za-z0-9+.-]{1,24}://[^\s:@/'\"<>]{0,128}:([^\s@/'\"<>]{1,128})@[\w%.\[\]-]", 1, url_password, trigger=r"://[^\s:@/]*:[^\s@/]+@"),
    rule("connection_string", r"(?i)://[^\s'\"<>]{0,200}?[?&;](?:password|pwd|pass)=([^&\s;'\"<>#]{3,128})", 1, url_password, trigger=r"(?i)://[^\s]*[?&;](?:password|pwd|pass)="),
    rule("connection_string", r"(?i)(?:server|data source|host|uid|user id|user|username|database|initial catalog|dbname)\s*=[^\n]{0,200}?\b(?:password|pwd)\s*=\s*([^;&\"'\s]{3,128})", 1, password, trigger=r"(?i)(?:password|pwd)\s*="),
    rule("connection_string", r"(?i)\b(?:password|pwd)\s*=\s*([^;\"'\s]{3,128})(?=[^\n]{0,200}?\b(?:server|data source|host|uid|user id|user|database|dbname)\s*=)", 1, password, trigger=r"(?i)(?:password|pwd)\s*="),
    rule("netrc_password", r"(?m)\b(?:machine\s+\S+|default)\s+login\s+\S+\s+password\s+(\S{3,128})", 1, _literal),
    rule("http_basic_auth", r"(?i:basic)\s+([A-Za-z0-9+/]{8,}={0,2})(?![A-Za-z0-9+/=])", 1, basic_auth),
    rule("http_bearer_token", r"(?i:bearer)\s+([A-Za-z0-9._~+/-]{20,4096}={0,2})(?![A-Za-z0-9._~+/=-])", 1, lambda s: looks_like_secret(s, 3.5, 20)),
    rule("cli_password", r"(?i)(?:^|\s)(?:-p|--password|-password|-pass|/p)[\s=:]+[\"']?([^\s\"']{4,128})", 1, password),
    rule("cli_password", r"(?:^|\s)(?:-u|--user)[ \t]+[\"']?[^\s:\"']{1,128}:([^\s\"'@]{6,128})", 1, password),
    rule("code_credential", r"(?i)(?:NetworkCredential|DirectoryEntry|PSCredential)\s*\([^)]{0,200}?,\s*[\"']([^\"']{4,128})[\"']\s*(?:,|\))", 1, password),
    rule("code_credential", r"(?i:passw(?:or)?d|passwd|pwd|secret|api_?key|token)\w{0,20}" + Q + r"\s*(?:===?|!==?)\s*[\"'`]([^\"'`\s]{4,128})[\"'`]", 1, _literal),
    rule("password_assignment", r"(?i:(?:passw(?:or)?d|passwd|pwd|pass))\b" + Q + r"\s*(?:=>|:=|[:=])\s*[\"'`]([^\"'`\s,;:)}\]][^\"'`\s]{3,127})[\"'`]", 1, password),
    rule("password_assignment", r"(?im)^[ \t]*(?:#[ \t]*)?(?:export[ \t]+|set[ \t]+)?[\w.-]{0,40}(?:passw(?:or)?d|passwd|pwd|pass)[ \t]*[=:][ \t]*([^\s\"'`;,]{6,128})[ \t]*$", 1, password, 0.9),
    rule("password_assignment", r"(?i:passw(?:or)?d)[^\n.;]{0,40}?\b(?:is|was|to|of)\s+[\"'`]([^\"'`\s]{4,64})[\"'`]", 1, _literal, 0.8),
    rule("password_assignment", r"(?i:(?:passw(?:or)?d|secret|token|api_?key)[\w.-]{0,30})" + Q + r"\s*\{[^}]{0,200}?\bdefault\s*=\s*\"([^\"\s]{8,256})\"", 1, _generic, 0.85),
)  # fmt: skip

_GENERIC = rule(
    "high_entropy",
    KEY + ASSIGN + VALUE.format("+"),
    1,
    _generic,
    0.85,
    KEY + ASSIGN + VALUE.format(""),
    not_before=_NOT_GENERIC,
)
SECRET_RULES: tuple[SecretRule, ...] = (*CORE_RULES, *SAAS_RULES, _GENERIC)
"""Specific rules first; the key-context rule last (specific rules win score ties)."""


_KEY_DB: list[Any] = []  # the hyperscan database (None without hyperscan), built on first use


def _key_starts(low: str) -> list[int] | None:
    """Where the key words start in the lower-cased text (one hyperscan pass, leftmost start
    of each match); None without hyperscan. The key-context pattern is then tried only there,
    instead of ``re`` trying its 22-way alternation at every character (~3x faster)."""
    if not _KEY_DB:
        try:
            import hyperscan
        except ImportError:  # pragma: no cover - hyperscan is a dependency
            _KEY_DB.append(None)
        else:
            built = hyperscan.Database()
            built.compile(
                expressions=[f"(?:{KEY_WORDS})".encode()], ids=[0], elements=1,
                flags=[hyperscan.HS_FLAG_SOM_LEFTMOST],
            )  # fmt: skip
            _KEY_DB.append(built)
    db = _KEY_DB[0]
    if db is None or not low.isascii():
        return None
    starts: list[int] = []

    def on_match(pid: int, start: int, end: int, flags: int, context: object) -> None:
        starts.append(start)

    db.scan(low.encode(), match_event_handler=on_match)
    return sorted(set(starts))


def _at(pattern: re.Pattern[str], subject: str, starts: list[int]) -> Iterator[re.Match[str]]:
    """``pattern.finditer(subject)`` for a pattern that can only match at ``starts``."""
    after = 0
    for pos in starts:
        if pos < after:
            continue
        m = pattern.match(subject, pos)
        if m is not None:
            after = max(m.end(), pos + 1)
            yield m


def find_secrets(text: str, hits: set[int] | None = None) -> Iterator[Finding]:
    """Every validated secret in ``text`` (overlaps are resolved by the caller); ``hits``: the
    indexes in ``SECRET_RULES`` the prefilter saw (None: all)."""
    lowered = text.lower()
    low = lowered if len(lowered) == len(text) else None  # else case-folding changed lengths
    for i, r in enumerate(SECRET_RULES):
        if hits is not None and i not in hits:
            continue
        pattern = r.pattern
        if r.lower and low is None:
            pattern = re.compile(pattern.pattern, re.ASCII | re.IGNORECASE)
        subject = low if r.lower and low is not None else text
        starts = _key_starts(subject) if r is _GENERIC and subject is low else None
        for m in pattern.finditer(subject) if starts is None else _at(pattern, subject, starts):
            if r.boundary and m.start() and _WORD.fullmatch(text[m.start() - 1]):
                continue
            start, end = m.span(r.group)
            value = text[start:end]
            if not value or (r.validate is not None and not r.validate(value)):
                continue
            if r.fake_check and is_fake(value):
                continue
            if r.near is not None and not (
                r.near.search(text, max(0, m.start() - _NEAR_BEFORE), m.start())
                or r.near.search(text, m.end(), m.end() + _NEAR_AFTER)
            ):
                continue  # the context word must be outside the match ("npm_…" is no context)
            if r.not_before is not None and r.not_before.search(text[max(0, start - 80) : start]):
                continue
            yield Finding("SECRET", start, end, r.id, r.score)
