"""The WAF rule catalogue: CRS-style ids, severities, paranoia levels and patterns.

Numbering follows the OWASP Core Rule Set families (the patterns are this project's own):
911 method policy, 920 protocol enforcement, 921 protocol attacks (smuggling, header
injection), 930 path traversal and file access, 931 remote file inclusion, 932 command
injection, 933 PHP, 934 generic (SSRF, prototype pollution, template injection), 941 XSS,
942 SQL and NoSQL injection, 944 Java (Log4Shell, deserialisation).

The table below is read at import. A rule is a header line
``ID FAMILY SEVERITY PARANOIA [cmdline]: message`` followed by its pattern, split over
indented lines that are joined without spaces (patterns use ``\\s``, never a literal space);
``@NAME@`` expands a macro defined by an ``@NAME`` block. ``cmdline`` rules also see the
shell-normalised value. Every pattern compiles under Hyperscan (caseless) and Python ``re``
(``IGNORECASE``): no back-references, no look-around. Rules without a pattern are code:
libinjection (942100, 941100), special-character counts (942430-2), and the HTTP checks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, cast

Severity = Literal["critical", "error", "warning", "notice"]
SCORES: dict[str, int] = {"critical": 5, "error": 4, "warning": 3, "notice": 2}


@dataclass(frozen=True, slots=True)
class Rule:
    """One detection rule. ``cmdline``: also matched on the shell-normalised value."""

    id: int
    family: str
    severity: Severity
    paranoia: int
    message: str
    pattern: str | None = None
    cmdline: bool = False

    @property
    def score(self) -> int:
        return SCORES[self.severity]


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule that matched: where (``location``), and the span ``start:end`` in the value
    after ``transform`` (``none``, ``decode1``.. for each decoding pass, or ``cmdline``)."""

    rule_id: int
    message: str
    family: str
    severity: Severity
    score: int
    paranoia: int
    location: str
    start: int = 0
    end: int = 0
    transform: str = "none"
    excerpt: str = ""

    @staticmethod
    def of(rule: Rule, location: str, start: int = 0, end: int = 0, transform: str = "none",
           excerpt: str = "") -> Finding:  # fmt: skip
        r = rule
        return Finding(r.id, r.message, r.family, r.severity, r.score, r.paranoia,
                       location, start, end, transform, excerpt[:64])  # fmt: skip

    def as_dict(self, excerpt: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rule": self.rule_id, "message": self.message, "family": self.family,
            "severity": self.severity, "score": self.score, "paranoia": self.paranoia,
            "location": self.location, "span": [self.start, self.end],
            "transform": self.transform,
        }  # fmt: skip
        if excerpt:
            out["excerpt"] = self.excerpt
        return out


_TABLE = r"""
# --- macros -------------------------------------------------------------------------------
# Unix commands that are seldom English words or that attacks use most (PL1), the rest (PL2).
@CMD1
  (?:id|whoami|uname|wget|curl|nc|ncat|netcat|socat|bash|sh|zsh|ksh|csh|tcsh|dash|busybox
  |python[23]?|perl|ruby|php|lua|node|nslookup|ping|sleep|chmod|chown|mkfifo|telnet|base64
  |ifconfig|passwd|crontab|nohup|useradd|usermod|reboot|shutdown|rm|cat|ls|pwd|printenv
  |xterm|tftp|ftp|ssh|scp|sudo|su|kill|killall|pkill|hostname|getent)
@CMD2
  (?:echo|find|grep|egrep|awk|sed|xargs|env|export|eval|exec|set|unset|head|tail|more
  |less|sort|uniq|cut|tr|tee|touch|cp|mv|mkdir|rmdir|ln|dd|od|xxd|hexdump|strings|tar|zip
  |unzip|gzip|gunzip|openssl|ps|top|df|du|mount|umount|who|w|last|uptime|date|test|time
  |timeout|watch|yes|expr|history|alias|source|file|stat|chgrp|which|whereis|locate
  |service|systemctl|exit|true|false)
# A shell separator (with the blanks after it) before a command, an optional path, and what
# may follow the command for it to look like shell: end, separator, redirection, flag,
# number, path, dotted word. A newline takes only spaces and tabs after it, so that a run of
# blank lines is not rescanned from each position (patterns must stay linear under `re`).
@SEP
  (?:(?:[;|&`"']|\$\(|\$\{)\s*|[\n\r][\x20\t]*)
@PATH
  (?:[\w.~-]*/)*
@CONT
  (?:\s*(?:$|[;|&<>`'"()$\\+])|\s+(?:-{1,2}[a-z]|[\d/~$]|[\w-]*[./][\w/.-]|[a-z]+://))
@WIN
  (?:cmd(?:\.exe)?\s*/[ck]\b|powershell(?:\.exe)?\b|pwsh\b|ping(?:\.exe)?\s+-[nt]\b
  |dir\s+(?:[a-z]:|[/\\%])|type\s+[a-z]:|net\s+(?:user|localgroup|group|view|use|share)\b
  |(?:ipconfig|systeminfo|tasklist|taskkill|certutil|bitsadmin|wmic|regsvr32|rundll32
  |mshta|cscript|wscript)(?:\.exe)?\b|reg\s+(?:query|add|delete)\b)
@DOT
  (?:%2e|%252e|%c0%ae|%e0%80%ae|%c0%2e|%u002e|%uff0e|0x2e|\\x2e|\\u002e|&#0*46;?|&#x0*2e;?)
@SLASH
  (?:%2f|%5c|%252f|%255c|%c0%af|%c1%9c|%c0%5c|%u2215|%u2216|%uefc8|%uf025|0x2f|0x5c|\\x2f
  |\\x5c|\\u002f|\\u005c|&#0*47;?|&#0*92;?|&#x0*2f;?|&#x0*5c;?)
@INTERNAL
  (?:localhost|localtest\.me|lvh\.me|[\w.-]*\.(?:nip|sslip|xip)\.io|127(?:\.\d{1,3}){1,3}
  |0\.0\.0\.0|10(?:\.\d{1,3}){3}|192\.168(?:\.\d{1,3}){2}|172\.(?:1[6-9]|2\d|3[01])
  (?:\.\d{1,3}){2}|169\.254(?:\.\d{1,3}){2}|0x[0-9a-f]{1,2}(?:\.(?:0x)?[0-9a-f]{1,3}){1,3}
  |0x[0-9a-f]{1,8}|\d{8,10}|0[0-7]{1,3}\.[0-9a-fx.]+
  |0|\[(?:[0:]*:0*1?|::ffff:[0-9a-f.:]+|f[cd][0-9a-f]{2}:[0-9a-f:]*|fe[89ab][0-9a-f]:
  [0-9a-f:]*)\])
@AUTHORITY
  (?:[a-z][a-z0-9+.-]{0,15}:)?//(?:[^/?#@\s]*@)?

# --- 911/920/921: method policy and protocol (code in _waf_engine) -------------------------
911100 protocol critical 1: HTTP method not allowed by policy
920100 protocol critical 1: invalid HTTP method token
920160 protocol critical 1: Content-Length is not a decimal number
920161 protocol critical 1: several Content-Length values that differ
920162 protocol warning 1: Content-Length header repeated
920181 protocol critical 1: both Content-Length and Transfer-Encoding
920270 protocol critical 1: invalid character in a header name
920271 protocol critical 1: control character in a header value
920272 protocol notice 3: non-ASCII byte in a header value
920280 protocol warning 2: Host header missing
920281 protocol critical 1: several Host headers
920370 protocol critical 1: header too long
920371 protocol error 1: too many headers
920372 protocol critical 1: request headers too large in total
921111 protocol critical 1: Transfer-Encoding other than one 'chunked'
921112 protocol critical 1: Transfer-Encoding on an HTTP/1.0 request
921113 protocol critical 1: h2c upgrade request (smuggling through proxies)
921110 protocol critical 1: HTTP request line inside a value (request smuggling)
  \b(?:get|post|put|delete|head|options|connect|patch|trace|propfind)\s+\S+\s+http/\d
921130 protocol critical 1: CR/LF then a header or status line in a value (header injection)
  \r\n?[\x20\t]*(?:set-cookie|location|content-(?:type|length|disposition)|transfer-encoding|host
  |refresh|x-[a-z-]+|access-control-allow-[a-z-]+|cache-control)\s*:|\r\n?[\x20\t]*http/\d(?:\.\d)?
  \s+\d{3}

# --- 930: path traversal and file access ---------------------------------------------------
930100 lfi critical 1: path traversal with encoded dots or separators
  @DOT@(?:\.|@DOT@)|\.@DOT@|\.\.@SLASH@|@SLASH@\.\.
930110 lfi critical 1 cmdline: path traversal (dot-dot segment)
  \.\.;?[\\/]|[\\/]\.\.(?:[^\w\s]|$)
930120 lfi critical 1 cmdline: access to an operating-system or application file
  \betc\W{0,3}(?:passwd|sudoers|master\.passwd)|\betc[\\/]+(?:shadow|group|hosts|issue
  |profile|hostname|crontab|resolv\.conf|ssh[\\/])|\bproc\W{0,3}(?:self|\d+)\W{0,3}
  (?:environ|cmdline|maps|fd|status|mem)\b|boot\.ini|win\.ini|system\.ini|system32\W{0,3}
  (?:config|drivers)|web-inf|meta-inf|web\.config|\.htaccess|\.htpasswd|global\.asa|inetpub
  |\bid_(?:rsa|dsa|ecdsa|ed25519)\b|\.ssh\W{0,3}(?:authorized_keys|known_hosts)
  |\.bash_history|\.aws\W{0,3}credentials|\.kube\W{0,3}config|wp-config\.php
  |\.git\W{0,3}(?:config|head)\b|applicationhost\.config|docker\.sock
930105 lfi warning 2: path normalisation evasion (/./ or ///)
  (?:[\\/]\.){2,}[\\/]|(?:^|[^:\\/])[\\/]{3,}
930121 lfi warning 2: absolute path into a system directory
  (?:^|[\s"'=:,;(])/(?:etc|proc|sys|root|boot|dev|var|usr|bin|sbin|tmp|opt|home)/
930130 lfi error 2: access to a restricted dot-file or repository
  (?:^|[\\/])\.(?:git|svn|hg|env|aws|docker|kube|npmrc|netrc|pgpass)(?:[\\/]|$)

# --- 931/934: remote file inclusion, SSRF, generic -----------------------------------------
934110 ssrf critical 1: cloud metadata address
  169\.254\.169\.254|169\.254\.170\.2\b|\bmetadata\.google\.internal|\bmetadata\.azure
  \.(?:com|internal)|100\.100\.100\.200|fd00:ec2::254|//instance-data\b|\b2852039166\b
  |0xa9fea9fe|0251\.0376\.0251\.0376|0xa9\.0xfe\.0xa9\.0xfe|::ffff:a9fe:a9fe
  |latest/(?:meta-data|user-data|api/token)|computemetadata/v1|/metadata/(?:instance|identity)
934120 ssrf critical 1: URL to a loopback, private or obfuscated address
  @AUTHORITY@@INTERNAL@(?:[:/?#\s\\]|$)
931120 ssrf critical 1: URL with a dangerous scheme (gopher, dict, file, php...)
  \b(?:gopher|dict|ldaps?|tftp|jar|netdoc|expect|phar|php|zip|glob|rmi|iiop)://
  |\bcompress\.zlib://|\bfile:/
931100 ssrf critical 2: URL whose host is an IPv4 literal
  \b(?:https?|ftps?|file)://(?:[^/?#@\s]*@)?\d{1,3}(?:\.\d{1,3}){3}
934190 ssrf warning 2: scheme-less localhost reference
  \blocalhost(?::\d{1,5})?/
934130 generic critical 1: JavaScript prototype pollution
  __proto__|\bconstructor\s*(?:\.|\[\s*["'])\s*prototype\b
934180 generic critical 1: server-side template injection
  \{\{[^{}]{0,200}(?:__[a-z]+__|\bconfig\b|\bself\b|\brequest\b|\bcycler\b|\blipsum\b
  |\bjoiner\b|\bconstructor\b|\d\s*\*\s*\d)|\{%[^%{}]{0,200}(?:\bimport\b|__[a-z]+__)
  |<%=?[^%<>]{0,200}(?:\bsystem\b|\bexec\b|\beval\b|`|\d\s*\*\s*\d)|[$#]\{\s*\d+\s*\*\s*\d+\s*\}

# --- 932/933: command injection, PHP -------------------------------------------------------
932100 rce critical 1 cmdline: Unix command injection
  @SEP@@PATH@@CMD1@@CONT@
932105 rce critical 2 cmdline: Unix command injection (common words)
  @SEP@@PATH@@CMD2@@CONT@
932110 rce critical 1 cmdline: Windows command injection
  (?:@SEP@|^[\x20\t]*)@WIN@
932120 rce critical 1: PowerShell command
  \binvoke-(?:expression|webrequest|command|restmethod|shellcode|mimikatz)\b|\biex\s*\(
  |new-object\s+(?:system\.)?net\.webclient|\bdownload(?:string|file)\s*\(
  |-encodedcommand\b|frombase64string\s*\(|set-executionpolicy\b
932130 rce critical 1 cmdline: Unix shell expression
  \$\(\s*@PATH@\w|`@PATH@@CMD1@\b[^`]{0,80}`|\$\{?ifs\b|/dev/(?:tcp|udp)/|<\(\s*\w
  |\{\s*@PATH@@CMD1@\s*,
932150 rce critical 1 cmdline: direct Unix command execution
  ^[\x20\t"'`]{0,8}@PATH@@CMD1@(?:\s+(?:-{1,2}[a-z]|/|\d{1,3}\.\d{1,3}\.|https?://|\$)
  |\s*[|;&`])
932160 rce critical 1 cmdline: path to a Unix shell or command
  (?:^|[^\w.~-])/(?:usr/(?:local/)?)?s?bin/@CMD1@\b
932170 rce critical 1: Shellshock function definition
  \(\s*\)\s*\{[^}]*;\s*\}
932200 rce critical 1: server-side include directive
  <!--\s*#\s*(?:exec|include|echo|config|printenv|fsize|flastmod)\b
933100 php critical 1: PHP open tag
  <\?(?:php\b|=|\s)
933160 php critical 1: PHP function call
  \b(?:shell_exec|passthru|proc_open|pcntl_exec|create_function|call_user_func(?:_array)?
  |file_get_contents|file_put_contents|fsockopen|highlight_file|show_source|phpinfo
  |base64_decode|gzinflate|str_rot13|preg_replace)\s*\(|\b(?:system|exec|popen|assert
  |unserialize|readfile|include|require)(?:_once)?\(\s*["'$]

# --- 941: cross-site scripting ---------------------------------------------------------------
941100 xss critical 1: XSS (libinjection)
941110 xss critical 1: script tag
  <[\s/]*script\b
941120 xss critical 1: event handler attribute
  <[a-z!][^<>]{0,500}[\s"'/]on[a-z]{3,32}\s*=|["'`]\s*/?\s*on[a-z]{3,32}\s*=
  |\son[a-z]{3,32}\s*=\s*["'`]?\s*(?:[\w$.]+\s*[(`=]|javascript:)
941130 xss critical 1: dangerous attribute or data URI
  \b(?:xlink:href|formaction|srcdoc|dynsrc|lowsrc|xmlns:xlink)\s*=|\bdata:\s*(?:text/html
  |image/svg\+xml|application/(?:x-)?(?:java|ecma)script|text/(?:java|ecma)script)
  |-moz-binding|behavior\s*:\s*url|:\s*expression\s*\(|\bstyle\s*=[^>]{0,200}expression\s*\(
941140 xss critical 1: script URI (javascript:, vbscript:)
  (?:j\s*a\s*v\s*a|v\s*b|l\s*i\s*v\s*e|e\s*c\s*m\s*a)\s*s\s*c\s*r\s*i\s*p\s*t\s*:
  \s*(?://|[\w$.\[\]'"]*\s*[(=\[`])
941160 xss critical 1: dangerous HTML tag
  <[\s/]*(?:script|i?frame|frameset|object|embed|applet|param|svg|math|style|link|meta
  |base|form|isindex|marquee|bgsound|xml|xss|layer|ilayer|img|image|video|audio|source
  |body|animate|set|template|portal|keygen)(?:[\s/>]|$)
941180 xss critical 1: DOM sink or script keyword
  document\s*\.\s*(?:cookie|write(?:ln)?|domain|location)\b|\bdocument\s*\[
  |\bwindow\s*\.\s*(?:location|open)\s*[=(]|\.(?:inner|outer)html\s*=|\bfromcharcode\s*\(
  |<!\[cdata\[|\blocation\s*\.\s*(?:href|hash|replace)\s*[=(]
941370 xss critical 1: JavaScript string breakout
  ["'`]\s*[-+*/%^|&;,)]+\s*(?:(?:alert|prompt|confirm|eval|fetch|settimeout|setinterval)
  \s*(?:[(`;,)]|$)|(?:document|window|globalthis|constructor)\s*[.\[]|location\s*[.=])
941390 xss critical 1: JavaScript function call
  \b(?:alert|prompt|confirm|eval|settimeout|setinterval|execscript|atob)(?:\(|`)
  |[=(,:]\s*(?:alert|prompt|confirm|eval)\s*[,;)]|\bnew\s+function\s*\(
941320 xss critical 2: HTML tag
  <[a-z][a-z0-9-]{0,20}(?:\s[^>]{0,500})?/?>|</[a-z][\w-]{0,30}\s*>

# --- 942: SQL and NoSQL injection -------------------------------------------------------------
942100 sqli critical 1: SQL injection (libinjection)
942140 sqli critical 1: database catalogue or system object
  \binformation_schema\b|\bmysql\.(?:user|db)\b|\bpg_(?:catalog|shadow|user|tables)\b
  |\bsys\.(?:tables|columns|objects|databases|user_objects)\b|\bsys(?:objects|columns
  |databases|tables)\b|\bsysibm\.|\bmsys(?:access)?objects\b|\b(?:all|dba)_(?:tables|users
  |tab_columns)\b|\buser_tables\b|\bv\$version\b|\bsqlite_(?:master|schema)\b|\bmaster\.\.
  |\bfrom\s+dual\b|@@(?:version|datadir|hostname|basedir)\b
942150 sqli critical 1: SQL function typical of injection
  \b(?:load_file|extractvalue|updatexml|group_concat|make_set|sys_context|crypt_key
  |regexp_substring|pg_read_file|lo_import|current_setting|utl_inaddr\.get_host_address
  |utl_http\.request|ctxsys\.drithsx\.sn|dbms_[a-z_]+(?:\.[a-z_]+)?|xp_cmdshell|xp_dirtree
  |sp_oacreate|sp_executesql|generate_series|pg_sleep)\s*\(
  |\b(?:char|chr)\(\s*\d+\s*\)\s*(?:\|\||\+|,)\s*(?:char|chr)\(
  |\b(?:ascii|ord|unicode|length)\s*\(\s*(?:substr(?:ing)?|mid|left|right)\s*\(
942151 sqli critical 2: SQL function call
  \b(?:char|chr|concat(?:_ws)?|ascii|substring|substr|mid|hex|unhex|if|iif|ifnull|nullif
  |isnull|coalesce|cast|convert|database|user|current_user|system_user|schema|length|elt
  |repeat|reverse|version)\s*\(
942160 sqli critical 1: time-based blind SQL injection
  \b(?:sleep|benchmark)\(\s*[\d(@]|\b(?:pg_sleep|dbms_lock\.sleep|user_lock\.sleep
  |dbms_pipe\.receive_message|randomblob|get_lock)\s*\(|\bwaitfor\s+(?:delay|time)\s*['"]
942180 sqli critical 1: quote breakout followed by a boolean condition
  ['"`][\s)]*(?:(?:or|and|xor|div)\b|&&|\|\|)[\s(]*(?:(?:['"]\s*)?[\w@]+(?:\s*['"])?|['"]{2})
  [\s)]*(?:=|!=|<>|<=?|>=?|\blike\b|\brlike\b|\bregexp\b|\bis\b|\bin\s*\(|\bbetween\b)
  |['"`][\s)]*(?:or|and)\s(?:true|false|not|null|\d+)\b[\x20\t]*(?:--|#|/\*|;|$)
  |['"`)]\s*(?:(?:or|and|xor)\b|&&|\|\|)\s*\(\s*select\b
942190 sqli critical 1: UNION-based SQL injection
  \bunion(?:\s|/\*[^*]*\*/|\(|\+)+(?:all|distinct|select)\b
942200 sqli critical 1: quote or parenthesis closed, then a comment or ORDER BY
  ['"`)][\x20\t]*(?:--[\x20\t-]*$|#[\x20\t]*$|/\*!?)|['")]\s*(?:order|group)\s+by\s+\d+
  |['")]\s*(?:having|where)\s+[\w'"(]+\s*(?:=|<|>|like\b)
942210 sqli critical 1: stacked SQL query
  ['")]\s*;\s*(?:i?if|select|waitfor|declare|exec|begin|case|set|drop|insert|update|delete)\b
  |;\s*iif\s*\(|;\s*(?:drop\s+(?:table|database|user)|truncate\s+table|shutdown\b|declare\s+@
  |exec(?:ute)?\s+(?:xp_|sp_|master\.)|insert\s+into|delete\s+from|update\s+\w+\s+set\b
  |select\s+(?:\*|case\b|count\s*\(|sleep|pg_sleep|null\b|\d))
942130 sqli critical 1: comparison of constants after a boolean operator (tautology)
  \b(?:or|and|xor)\s[\s(]*\d+[\s)]*(?:=|<>|!=|<=?|>=?)[\s(]*\d+\b
  |^[\s)]{0,8}(?:or|and|xor|\|\||&&)\s[\s(]*[\w'"]+[\s)]*(?:=|<>|!=|<=?|>=?|like\b)
  |\b(?:or|and|xor)\s[\s(]*['"][^'"]{0,20}['"]\s*(?:=|<>|!=|like\b)\s*['"]
  |\b(?:and|or)\s*\(\s*select\b
942170 sqli critical 1: CASE WHEN over a comparison (conditional injection)
  \bcase\s+when[\s(]*[\w'"@.]+\s*(?:=|<>|!=|<=?|>=?)
942500 sqli critical 1: MySQL inline comment
  /\*!\d{0,5}|\w/\*\*/\w
942290 nosql critical 1: MongoDB operator injection
  (?:^|[\[{"',\s])\$(?:where|ne|eq|gt|gte|lt|lte|regex|nin|in|or|and|not|nor|exists|expr
  |function|accumulator|elemmatch|jsonschema|lookup)(?:$|[\]}"':\s])
942360 sqli warning 2: SQL statement
  \bselect\b[^;]{0,100}\bfrom\b|\binsert\s+into\b|\bdelete\s+from\b|\bdrop\s+table\b
  |\bupdate\s+\w+\s+set\b
942430 sqli warning 2: 12 or more SQL special characters
942431 sqli warning 3: 6 or more SQL special characters
942432 sqli warning 4: 2 or more SQL special characters

# --- 944: Java --------------------------------------------------------------------------------
944150 java critical 1: Log4Shell lookup
  \$\{[^}]{0,30}(?:jndi|\$\{|lower:|upper:|env:|sys:|java:|date:|::-|main:|base64:)
944100 java critical 1: Java code execution class
  \bjava\.lang\.(?:runtime|processbuilder|system|reflect|class)\b|\.getruntime\(\)
  |\bprocessbuilder\b|\bjavax\.script\.|\bclass\.module\.classloader|\.classloader\.
  |@java\.lang\.|\bognl\b
944210 java critical 1: Java serialised object
  \bro0ab|\baced0005
"""

_HEAD = re.compile(r"^(\d{6}) (\w+) (critical|error|warning|notice) ([1-4])( cmdline)?: (.+)$")
_MACRO = re.compile(r"@([A-Z0-9]+)@")


def _parse(table: str) -> tuple[Rule, ...]:
    macros: dict[str, str] = {}
    entries: list[tuple[Any, list[str]]] = []  # (header match or macro name, pattern lines)
    for line in table.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("  "):
            entries[-1][1].append(line.strip())
        elif line.startswith("@"):
            entries.append((line[1:].strip(), []))
        elif m := _HEAD.match(line):
            entries.append((m, []))
        else:
            raise ValueError(f"bad WAF rule line: {line!r}")
    rules: list[Rule] = []
    for head, lines in entries:
        pattern = _MACRO.sub(lambda m: macros[m.group(1)], "".join(lines)) or None
        if isinstance(head, str):
            macros[head] = str(pattern)
            continue
        rid, family, severity, level, cmd, message = head.groups()
        sev = cast(Severity, severity)
        rules.append(Rule(int(rid), family, sev, int(level), message, pattern, bool(cmd)))
    return tuple(rules)


RULES: tuple[Rule, ...] = _parse(_TABLE)
BY_ID: dict[int, Rule] = {r.id: r for r in RULES}
SPECIAL_COUNTS: dict[int, int] = {942430: 12, 942431: 6, 942432: 2}

# Cheap pre-filters (ids < 1000, never scored): libinjection runs only where they match.
SQLI_TRIGGER = (
    1,
    r"['\"`;()=#]|--|/\*|\b(?:or|and|xor|union|select|sleep|benchmark|waitfor|having|where"
    r"|order|group|like|rlike|exec|declare|div|case|when|null|into|from)\b",
)
XSS_TRIGGER = (2, r"[<>\"'`(=:&\\]")
