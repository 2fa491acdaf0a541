"""Signature layer of the C2 firewall: general prompt-injection and jailbreak shapes.

Patterns run (case-insensitive) over the *folded* text and every decoded view, so they are
written for plain ASCII words: ``_S`` is a word gap (also matches words run together after
spacing folding), ``_W(n)`` lets up to n other words sit in between. Each rule has a
confidence (the probability it contributes, combined with the classifier by noisy-OR):
``high`` rules block on their own, ``medium``/``low`` ones need support from the model.
"""

# ruff: noqa: E501  (a table of regular expressions: one rule a line reads best)

from __future__ import annotations

from dataclasses import dataclass

_S = r"[^a-z0-9]{0,4}"
_G = r"[^a-z0-9]{1,4}"


def _W(n: int) -> str:
    return rf"(?:[a-z0-9']{{1,20}}{_G}){{0,{n}}}"


HIGH, MEDIUM, LOW = 0.9, 0.4, 0.2


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    type: str
    confidence: float
    message: str
    pattern: str


_OVERRIDE_VERB = r"(?:ignore|disregard|forget|skip|override|overwrite|bypass|neglect|discard|abandon|drop|dismiss|set aside)"
_PRIOR = r"(?:previous|prior|above|earlier|preceding|initial|original|old|all|any|every|your|the|system|developer|safety)"
_INSTR = r"(?:instructions?|prompts?|rules|directives?|guidelines|commands|guardrails|restrictions|constraints|programming|polic(?:y|ies)|orders|context|conversation)"
_SAFETY = r"(?:safety|content|ethical|ethics|moral|security|usage|openai|anthropic)"
_LIMITS = r"(?:filters?|guidelines|polic(?:y|ies)|restrictions|protocols|settings|checks|measures|guardrails|limitations|rules|boundaries|constraints|principles)"
_PERSONA = r"(?:unrestricted|unfiltered|uncensored|evil|jailbroken|amoral|unethical|immoral|rogue|malicious|lawless|unbound|unlimited|limitless)"
_REVEAL = r"(?:reveal|show|print|output|repeat|display|recite|tell|give|leak|dump|disclose|share|write out|spell out|what (?:is|are|were))"
_AI = r"(?:ai|assistant|agent|model|llm|chatbot|bot|gpt|language model)"
_SEND = r"(?:send|forward|email|e-mail|mail|transfer|upload|post|wire|share|exfiltrate)"

RULES: tuple[Rule, ...] = (
    Rule(
        "FW-100",
        "PROMPT_INJECTION",
        HIGH,
        "instruction override",
        rf"\b{_OVERRIDE_VERB}{_G}{_W(3)}{_PRIOR}{_G}{_W(2)}{_INSTR}\b",
    ),
    Rule(
        "FW-101",
        "PROMPT_INJECTION",
        MEDIUM,
        "replacement instructions",
        rf"\b(?:new|updated|real|actual|true|revised|secret|hidden){_G}(?:system{_G})?(?:instructions?|directives?|task|orders|objective)\b{_S}[:\-]",
    ),
    Rule(
        "FW-102",
        "PROMPT_INJECTION",
        MEDIUM,
        "from-now-on re-programming",
        rf"\bfrom{_G}now{_G}on{_S}(?:,{_S})?you{_G}(?:will|are|must|shall|should|have to|can)\b",
    ),
    Rule(
        "FW-103",
        "PROMPT_INJECTION",
        MEDIUM,
        "instead-do directive",
        rf"\binstead{_S}(?:,{_S})?(?:you{_G})?(?:must|should|will|do|say|output|print|respond|reply|write)\b",
    ),
    Rule(
        "FW-110",
        "ROLE_HIJACK",
        HIGH,
        "unrestricted persona",
        rf"\b(?:act|behave|respond|pretend|roleplay|role{_S}play|simulate|become|answer){_G}(?:as|like|to be){_G}{_W(2)}{_PERSONA}\b",
    ),
    Rule(
        "FW-111",
        "ROLE_HIJACK",
        HIGH,
        "do-anything-now persona",
        rf"\bdo{_G}anything{_G}now\b|\b(?:developer|dev|god|jailbreak|jailbroken|unrestricted|evil|dan|opposite|unfiltered){_G}mode{_G}(?:enabled|activated|on|engaged)\b",
    ),
    Rule(
        "FW-112",
        "JAILBREAK",
        HIGH,
        "safety switched off",
        rf"\b(?:ignore|bypass|disable|turn off|switch off|override|remove|deactivate|circumvent|evade|without|free of|free from){_G}{_W(2)}{_SAFETY}{_G}{_W(1)}{_LIMITS}\b",
    ),
    Rule(
        "FW-113",
        "JAILBREAK",
        HIGH,
        "not bound by rules",
        rf"\b(?:not|never|no longer){_G}(?:bound|restricted|limited|constrained|governed){_G}by{_G}{_W(3)}(?:rules|polic(?:y|ies)|guidelines|ethics|morals|restrictions|openai|laws|filters)\b",
    ),
    Rule(
        "FW-114",
        "ROLE_HIJACK",
        MEDIUM,
        "persona reassignment",
        rf"\byou{_G}are{_G}(?:now|no longer){_G}{_W(3)}(?:{_AI}|{_PERSONA}|free|able|allowed|named|called)\b",
    ),
    Rule(
        "FW-115",
        "JAILBREAK",
        MEDIUM,
        "stay-in-character pressure",
        rf"\b(?:stay|remain|keep){_G}in{_G}character\b|\bbreak(?:ing)?{_G}character\b|\bbroken{_G}free\b|\bjailbr(?:eak|oken)\b",
    ),
    Rule(
        "FW-116",
        "JAILBREAK",
        MEDIUM,
        "no refusals",
        rf"\b(?:never|do not|don't|cannot|can't|must not|will not|won't){_G}{_W(1)}(?:refuse|decline|say no|apologi[sz]e|warn|include (?:any )?(?:warnings|disclaimers))\b",
    ),
    Rule(
        "FW-117",
        "JAILBREAK",
        MEDIUM,
        "elevated mode",
        rf"\b(?:sudo|admin|administrator|root|god|maintenance|debug){_G}(?:mode|access|override|privileges)\b",
    ),
    Rule(
        "FW-120",
        "PROMPT_EXFILTRATION",
        HIGH,
        "system prompt disclosure",
        rf"\b{_REVEAL}{_G}(?:me{_G}|us{_G})?{_W(3)}(?:system|initial|original|hidden|secret|developer|pre{_S}prompt|internal)(?:{_G}\w+)?{_G}(?:prompt|instructions|message|rules|configuration|directives)\b",
    ),
    Rule(
        "FW-121",
        "PROMPT_EXFILTRATION",
        HIGH,
        "repeat the text above",
        rf"\b(?:repeat|print|output|echo|copy|recite|reproduce){_G}{_W(3)}(?:words|text|everything|content|lines|instructions){_G}(?:above|before|preceding|prior)\b",
    ),
    Rule(
        "FW-130",
        "DELIMITER_INJECTION",
        HIGH,
        "chat-template tokens",
        r"<\|(?:im_start|im_end|system|endoftext|user|assistant|eot_id|start_header_id)\|>|\[/?(?:INST|SYS)\]|<</?SYS>>",
    ),
    Rule(
        "FW-131",
        "DELIMITER_INJECTION",
        MEDIUM,
        "fake system or admin block",
        rf"</?(?:system|sys|instructions?|admin|developer)(?:{_G}[a-z_]+)?>|\[(?:system|admin|developer){_S}(?:message|note|override)?\]|^[ \t#>*]*(?:system|admin){_S}(?:message|prompt|override|note)?{_S}:",
    ),
    Rule(
        "FW-132",
        "DELIMITER_INJECTION",
        MEDIUM,
        "end-of-input marker",
        rf"\b(?:end|stop){_G}of{_G}(?:user{_G}|the{_G})?(?:input|prompt|context|document|data|instructions){_S}(?:[\]\-=#*>]|\.{_S}(?:new|now|system))",
    ),
    Rule(
        "FW-140",
        "INDIRECT_INJECTION",
        HIGH,
        "message addressed to the model",
        rf"\b(?:important|attention|urgent|note|notice|message|instructions?){_S}(?:!+{_S})?(?:{_W(2)})?(?:for|to){_G}(?:the{_G}|any{_G}|all{_G})?{_AI}s?\b(?:{_S}(?:reading|processing|summari[sz]ing|[:,!]))",
    ),
    Rule(
        "FW-141",
        "INDIRECT_INJECTION",
        HIGH,
        "message claiming the user's authority",
        rf"\bthis{_G}is{_G}(?:an?{_G})?(?:important{_G})?(?:message|instruction|request)s?{_G}from{_G}(?:me{_S},?{_S})?(?:the{_G}|your{_G})?(?:user|developer|admin|administrator|creator|owner|operator)\b",
    ),
    Rule(
        "FW-142",
        "TOOL_HIJACK",
        LOW,
        "send data to an address",
        rf"\b{_SEND}{_G}{_W(5)}(?:to|at){_G}[a-z0-9._%+-]+@[a-z0-9-]+\.[a-z.]{{2,}}",
    ),
    Rule(
        "FW-143",
        "TOOL_HIJACK",
        MEDIUM,
        "act before the user's task",
        rf"\b(?:before|after|prior to|instead of){_G}(?:you{_G})?(?:do(?:ing)?|answer(?:ing)?|complet(?:e|ing)|respond(?:ing)?|solv(?:e|ing)|summari[sz](?:e|ing)){_G}{_W(3)}(?:task|request|question|query){_S},?{_S}(?:you{_G})?(?:must|should|need to|have to|please|first)\b",
    ),
    Rule(
        "FW-144",
        "TOOL_HIJACK",
        MEDIUM,
        "call a tool on the attacker's behalf",
        rf"\b(?:call|invoke|use|execute|run|trigger){_G}(?:the{_G})?[a-z_]{{3,40}}{_G}(?:tool|function|plugin|api){_G}{_W(3)}(?:with|to send|and send|passing)\b",
    ),
    Rule(
        "FW-150",
        "MARKDOWN_EXFILTRATION",
        MEDIUM,
        "markdown image with query data",
        r"!\[[^\]\n]{0,100}\]\(\s*https?://[^)\s]{1,200}[?&][a-z0-9_]{1,30}=[^)\s]{0,200}\)",
    ),
    Rule(
        "FW-151",
        "MARKDOWN_EXFILTRATION",
        HIGH,
        "exfiltration through a URL",
        rf"\b(?:append|add|include|encode|embed|insert|put){_G}{_W(4)}(?:conversation|chat|history|secrets?|passwords?|api{_S}keys?|tokens?|credentials|personal|private|user(?:'s)?{_G}data|previous{_G}messages){_G}{_W(5)}(?:url|query|link|parameter|image|endpoint)\b",
    ),
    Rule(
        "FW-152",
        "MARKDOWN_EXFILTRATION",
        MEDIUM,
        "render an image or link from a URL",
        rf"\b(?:render|display|show|output|include|print){_G}(?:an?{_G}|the{_G}|this{_G})?(?:markdown{_G})?(?:image|img|picture|link|pixel){_G}{_W(3)}https?://",
    ),
    Rule(
        "FW-160",
        "JAILBREAK",
        MEDIUM,
        "hypothetical framing without limits",
        rf"\b(?:hypothetical(?:ly)?|fictional|imaginary|simulated|alternate)\b.{{0,60}}\b(?:no|without|free of|any){_G}(?:rules|restrictions|limits|limitations|filters|laws|ethics|morals|censorship)\b",
    ),
    Rule(
        "FW-161",
        "JAILBREAK",
        MEDIUM,
        "two-persona answer format",
        rf"\b(?:two|2|both){_G}(?:different{_G})?(?:responses|answers|paragraphs|ways|personas)\b.{{0,120}}\b(?:normal|classic|standard|filtered)\b.{{0,120}}\b(?:jailbr\w*|unfiltered|uncensored|developer|dan|evil|opposite)\b",
    ),
    Rule(
        "FW-170",
        "ENCODED_INSTRUCTION",
        HIGH,
        "decode-and-obey",
        rf"\b(?:decode|decrypt|decipher|translate|convert|unscramble){_G}{_W(3)}(?:base{_S}64|rot{_S}13|hex|binary|cipher|morse|caesar)\b.{{0,80}}\b(?:follow|execute|obey|do|run|perform|carry out|act on|comply)\b",
    ),
)
BY_ID = {r.id: r for r in RULES}
