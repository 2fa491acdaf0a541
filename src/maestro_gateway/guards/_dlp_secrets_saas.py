# ruff: noqa: E501 (one rule per line: the table reads as a table)
"""DLP secret rules for SaaS, messaging, AI and IoT APIs: fixed prefixes with the exact length
and alphabet of each format, or the provider's name nearby where the value has no prefix.

Written from the providers' published token formats (prefix, length, alphabet); a value that
is one character short or long, has the wrong alphabet or is a placeholder does not match.
"""

from __future__ import annotations

from maestro_gateway.guards._dlp_secret_base import ASSIGN, B, E, SecretRule, rule, varied
from maestro_gateway.guards._dlp_validators import looks_like_secret

__all__ = ["SAAS_RULES"]

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

SAAS_RULES: tuple[SecretRule, ...] = (
    # --- chat and webhooks
    rule("slack_token", B + r"xoxb-\d{8,14}-\d{8,14}-[A-Za-z0-9]{18,34}" + E, 0, varied(3.0)),
    rule("slack_token", B + r"xoxb-\d{8,14}-[A-Za-z0-9]{18,26}" + E, 0, varied(3.0)),
    rule("slack_token", B + r"xox[pe]-\d{8,14}-\d{8,14}-\d{8,14}-[A-Za-z0-9]{28,34}" + E, 0, varied(3.0)),
    rule("slack_token", B + r"xox[os]-\d{6,14}-\d{6,14}-\d{6,14}-[a-fA-F0-9]{10,64}" + E, 0, varied(3.0)),
    rule("slack_token", B + r"xox[ar]-(?:\d-)?[A-Za-z0-9-]{12,60}" + E, 0, varied(3.0)),
    rule("slack_token", B + r"xoxe(?:\.xox[bp])?-\d-[A-Za-z0-9]{140,170}" + E, 0, varied(3.5)),
    rule("slack_token", B + r"xapp-\d-[A-Z0-9]{9,12}-\d{10,14}-[A-Za-z0-9]{32,64}" + E, 0, varied(3.0)),
    rule("slack_webhook", r"(?:https?://)?hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_-]{40,64}", 0, varied(3.5)),
    rule("msteams_webhook", r"https://[\w.-]+\.(?:office|webhook\.office)\.com/webhook(?:b2)?/[a-f0-9-]{36}@[a-f0-9-]{36}/IncomingWebhook/[a-f0-9]{32}/[a-f0-9-]{36}"),
    rule("discord_webhook", r"https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/\d{17,20}/[A-Za-z0-9_-]{60,72}"),
    rule("discord_bot_token", B + r"[MNO][A-Za-z0-9_-]{23,25}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,38}" + E, 0, varied(4.0)),
    rule("telegram_bot_token", B + r"\d{5,16}:A[A-Za-z0-9_-]{33,34}" + E, 0, varied(3.5)),
    rule("twitch_stream_key", B + r"live_\d{6,12}_[A-Za-z0-9]{30}" + E),
    rule("twitch_token", r"oauth:([a-z0-9]{30})" + E, 1, varied(3.5), trigger=r"(?i)twitch", near=r"twitch"),
    # --- payments and commerce
    rule("stripe_key", B + r"(?:sk|rk)_(?:live|test|prod)_[A-Za-z0-9]{24,99}" + E),
    rule("stripe_key", B + r"whsec_[A-Za-z0-9]{32,64}" + E),
    rule("square_token", B + r"(?:sq0atp-[A-Za-z0-9_-]{22}|sq0csp-[A-Za-z0-9_-]{43}|EAAA[A-Za-z0-9_-]{60})" + E),
    rule("shopify_token", B + r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}" + E),
    rule("flutterwave_key", B + r"FLW(?:SEC|PUB)K(?:_TEST)?-[a-h0-9]{32}-X" + E),
    rule("duffel_token", B + r"duffel_(?:test|live)_[A-Za-z0-9_=-]{43}" + E),
    rule("easypost_key", B + r"EZ[AT]K[A-Za-z0-9]{54}" + E),
    rule("shippo_token", B + r"shippo_(?:live|test)_[a-f0-9]{40}" + E),
    # --- AI APIs
    rule("openai_key", B + r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{16,}T3BlbkFJ[A-Za-z0-9_-]{16,}" + E),
    rule("openai_key", B + r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}" + E, 0, varied(4.0)),
    rule("anthropic_key", B + r"sk-ant-(?:api|admin|sid)\d\d-[A-Za-z0-9_-]{80,}" + E),
    rule("huggingface_token", B + r"(?:hf_|api_org_)[A-Za-z0-9]{34}" + E, 0, varied(3.5)),
    rule("replicate_token", B + r"r8_[A-Za-z0-9]{37}" + E),
    rule("groq_key", B + r"gsk_[A-Za-z0-9]{52}" + E),
    rule("tavily_key", B + r"tvly-(?:dev-|prod-)?[A-Za-z0-9]{32}" + E),
    rule("jina_key", B + r"jina_[a-f0-9]{32}[A-Za-z0-9_-]{20,}" + E),
    rule("perplexity_key", B + r"pplx-[A-Za-z0-9]{48}" + E),
    rule("firecrawl_key", B + r"fc-[a-f0-9]{32}" + E, 0, varied(3.3), near=r"firecrawl", trigger=r"(?i)firecrawl"),
    # --- mail and messaging
    rule("sendgrid_key", B + r"SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}" + E),
    rule("brevo_key", B + r"x(?:keysib|smtpsib)-[a-f0-9]{64}-[A-Za-z0-9]{16}" + E),
    rule("mailgun_key", B + r"key-[a-f0-9]{32}" + E, 0, varied(3.3)),
    rule("mailchimp_key", B + r"[a-f0-9]{32}-us\d{1,2}" + E, 0, varied(3.3)),
    rule("postmark_token", r"(?i:postmark[\w.-]{0,30}|X-Postmark-(?:Server|Account)-Token)" + ASSIGN + r"(" + _UUID + ")", 1),
    rule("twilio_key", B + r"SK[a-f0-9]{32}" + E, 0, varied(3.2)),
    # --- observability, productivity, developer platforms
    rule("newrelic_key", B + r"(?:NRAK-[A-Z0-9]{27}|NRII-[A-Za-z0-9_-]{32}|NRJS-[a-f0-9]{19}|(?:NRRA|NRSP|NRAA)-[A-Za-z0-9]{27,32})" + E, 0, varied(3.0)),
    rule("newrelic_key", B + r"[a-z0-9]{36}NRAL" + E, 0, varied(3.4)),
    rule("newrelic_key", B + r"px-(?:api|dep)-" + _UUID + E, 0, varied(3.5)),
    rule("sentry_token", B + r"(?:sntrys_eyJ[A-Za-z0-9+/=_-]{60,}|sntryu_[a-f0-9]{64})" + E),
    rule("sentry_dsn", r"https://([a-f0-9]{32})(?::[a-f0-9]{32})?@[\w.-]*sentry\.io/\d+", 1),
    rule("dynatrace_token", B + r"dt0[a-z]\d{2}\.[A-Z0-9]{24}\.[A-Z0-9]{64}" + E),
    rule("datadog_key", r"(?i:datadog|dd)[\w.-]{0,20}(?:api|app)[\w.-]{0,10}key" + ASSIGN + r"([a-f0-9]{32}|[a-f0-9]{40})" + E, 1, varied(3.3)),
    rule("linear_key", B + r"lin_api_[A-Za-z0-9]{40}" + E),
    rule("notion_token", B + r"(?:secret_[A-Za-z0-9]{43}|ntn_[A-Za-z0-9]{46})" + E, 0, varied(4.0)),
    rule("airtable_token", B + r"pat[A-Za-z0-9]{14}\.[a-f0-9]{64}" + E),
    rule("figma_token", B + r"figd_[A-Za-z0-9_-]{40}" + E),
    rule("typeform_token", B + r"tfp_[A-Za-z0-9_-]{44,59}" + E),
    rule("hubspot_token", B + r"pat-(?:na|eu)\d-" + _UUID + E),
    rule("asana_token", B + r"[12]/\d{13,19}(?:/\d{13,19})?:[A-Za-z0-9]{32}" + E, 0, varied(3.5)),
    rule("harness_token", B + r"(?:pat|sat)\.[A-Za-z0-9_-]{22}\.[a-f0-9]{24}\.[A-Za-z0-9]{20}" + E),
    rule("postman_key", B + r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}" + E),
    rule("prefect_key", B + r"pnu_[A-Za-z0-9]{36}" + E),
    rule("readme_key", B + r"rdme_[a-z0-9]{70}" + E),
    rule("mapbox_token", B + r"[pst]k\.eyJ1Ijoi[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{22}" + E),
    rule("mapbox_token", B + r"[pst]k\.[A-Za-z0-9]{60,}\.[A-Za-z0-9_-]{22}" + E, 0, varied(3.5), trigger=r"(?i)mapbox", near=r"mapbox"),
    rule("salesforce_token", B + r"00D[A-Za-z0-9]{12,15}![A-Za-z0-9._]{80,}"),
    rule("salesforce_token", B + r"3MVG9[A-Za-z0-9._]{40,90}" + E, 0, varied(4.0)),  # consumer key
    rule("okta_token", B + r"00[A-Za-z0-9_-]{40}" + E, 0, lambda s: looks_like_secret(s, 4.0, 40, 3), near=r"okta", trigger=r"(?i)okta"),
    rule("twitter_bearer_token", B + r"A{21}[A-Za-z0-9%]{30,}" + E, fake_check=False),
    rule("facebook_token", B + r"EAA[A-Za-z0-9]{100,}" + E, 0, varied(4.0)),
    rule("facebook_secret", r"(?i:facebook|fb)[\w.-]{0,20}(?:secret|token)" + ASSIGN + r"([a-f0-9]{32})" + E, 1, varied(3.3)),
    rule("dropbox_token", B + r"sl\.[A-Za-z0-9_-]{130,}" + E),
    rule("dropbox_token", B + r"[A-Za-z0-9]{11}A{10}[A-Za-z0-9_=-]{43}" + E, 0, varied(3.5), fake_check=False),
    rule("firebase_fcm_key", B + r"AAAA[A-Za-z0-9_-]{7}:APA91b[A-Za-z0-9_-]{130,}" + E, fake_check=False),
    rule("stackhawk_key", B + r"hawk\.[A-Za-z0-9_-]{20}\.[A-Za-z0-9_-]{20}" + E),
    rule("frameio_token", B + r"fio-u-[A-Za-z0-9_=-]{64}" + E),
    rule("adafruit_key", B + r"aio_[A-Za-z0-9]{28}" + E, 0, varied(3.5)),
    rule("adobe_secret", B + r"p8e-[A-Za-z0-9_-]{32}" + E, 0, varied(3.5)),
    rule("dependency_track_key", B + r"odt_[A-Za-z0-9]{32}" + E, 0, varied(3.5)),
    rule("segment_token", B + r"sgp_[A-Za-z0-9]{64}" + E),
    rule("scalingo_token", B + r"tk-us-[A-Za-z0-9_-]{48}" + E),
    rule("infracost_key", B + r"ico-[A-Za-z0-9]{32}" + E, 0, varied(3.5)),
    rule("intra42_secret", B + r"s-s4t2(?:ud|af)-[a-f0-9]{64}" + E),
    rule("maxmind_key", B + r"[A-Za-z0-9]{6}_[A-Za-z0-9]{29}_mmk" + E, 0, varied(3.5)),
    rule("octopus_key", B + r"API-[A-Z0-9]{26}" + E, 0, varied(3.5)),
    rule("plaid_token", B + r"access-(?:sandbox|development|production)-" + _UUID + E),
    rule("settlemint_token", B + r"sm_(?:aat|pat|sat)_[A-Za-z0-9]{16}" + E, 0, varied(3.0)),
    # --- devices and appliances (formats without a prefix: the product's name or API nearby)
    rule("truenas_key", B + r"\d{1,5}-[A-Za-z0-9]{64}" + E, 0, varied(4.0), near=r"truenas|freenas|api_key|apikey|api key"),
    rule("thingsboard_token", r"/api/v1/([A-Za-z0-9]{20})/(?:telemetry|attributes|rpc|claim)", 1, varied(3.3)),
    rule("blynk_token", r"(?:token=|auth_token[\"' ]{1,3}|BLYNK_AUTH_TOKEN[\"' ]{1,3})([A-Za-z0-9_-]{32})" + E, 1, varied(3.5), near=r"blynk", trigger=r"(?i)blynk"),
    rule("particle_token", r"(?:access_token[=:\"' ]{1,4}|token[=:\"' ]{1,4}|bearer )([a-f0-9]{40})" + E, 1, varied(3.3), near=r"particle", trigger=r"(?i)particle"),
    rule("nasa_key", r"api_key=([A-Za-z0-9]{40})" + E, 1, varied(4.0), near=r"nasa\.gov", trigger=r"(?i)nasa\.gov"),
    rule("jenkins_token", B + r"11[a-f0-9]{32}" + E, 0, varied(3.3), near=r"jenkins", trigger=r"(?i)jenkins"),
    rule("sauce_key", r"(?i:sauce)[\w.-]{0,20}(?:key|token)" + ASSIGN + r"(" + _UUID + ")", 1),
    rule("teamcity_token", B + r"eyJ0eXAiOiAiVENWMiJ9\.[A-Za-z0-9_-]{30,}\.[A-Za-z0-9_-]{40,}" + E),
)  # fmt: skip
