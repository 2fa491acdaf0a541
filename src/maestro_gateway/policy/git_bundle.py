"""Policy bundles from git (C13): pinned to a commit, optionally signed, tested before use.

A bundle is a directory in a git repository (local path or remote URL)::

    policies/*.cedar     Cedar policies (added to the shipped default set unless excluded)
    tests/*.yaml         the bundle's own policy tests (see policy.bundle_tests)
    guards.yaml          optional guard settings, merged over the configuration's ``guards``

The loader resolves ``ref`` (or takes the pinned ``commit``) to a commit id, verifies the
commit's SSH or GPG signature when ``require_signed`` is set (``git verify-commit`` against
``allowed_signers`` / ``gpg_home``), reads the files *at that commit* (never a work tree that
could be edited behind its back), parses every policy and runs every test. Only a bundle
that passes all of it is installed; its version is ``git:<commit>``, which every decision
record carries. The watcher polls for new commits and swaps atomically; a bad commit is
refused and the running bundle stays (rolled back to, in effect).

Git is run as a subprocess (the ``git`` CLI is on every supported machine): no git library
in Python verifies SSH signatures, and the CLI is what operators already trust.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from maestro_gateway.policy.bundle_tests import CaseResult, load_cases, run_cases
from maestro_gateway.policy.engine import PolicyBundle, PolicyEngine, PolicyError
from maestro_gateway.policy.engine import default_policy_text as _default

__all__ = ["GitBundleConfig", "GitBundleWatcher", "LoadedBundle", "load_git_bundle"]

log = logging.getLogger("maestro_gateway.policy")

_SHA = re.compile(r"^[0-9a-f]{40}$")
_MAX_FILES = 500
_MAX_FILE_BYTES = 1024 * 1024


class GitBundleConfig(BaseModel):
    """Where the policy bundle lives in git, and what a commit must satisfy to be used."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repo: str = Field(description="A local repository path or a remote URL.")
    ref: str = Field("main", description="Branch or tag to follow (new commits reload).")
    commit: str | None = Field(
        None, pattern=r"^[0-9a-f]{40}$", description="Pin to this commit; no reloads."
    )
    path: str = Field("", description="The bundle's directory inside the repository.")
    require_signed: bool = Field(False, description="Refuse commits without a trusted signature.")
    allowed_signers: str | None = Field(
        None, description="SSH allowed_signers file for signed commits (gpg.format=ssh)."
    )
    gpg_home: str | None = Field(None, description="GNUPGHOME holding trusted GPG keys.")
    mirror_dir: str = Field(
        ".demo/policy-bundle.git", description="Local bare mirror of a remote repository."
    )
    poll_interval_s: float = Field(30.0, gt=0)
    include_default: bool = Field(True, description="Add the bundle to the default policies.")
    timeout_s: float = Field(60.0, gt=0, description="Limit for each git command.")


@dataclass(frozen=True, slots=True)
class LoadedBundle:
    commit: str
    bundle: PolicyBundle
    guards: dict[str, Any]
    results: tuple[CaseResult, ...]


def _git(cfg: GitBundleConfig, gitdir: str, *args: str, binary: bool = False) -> Any:
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", LC_ALL="C")
    if cfg.gpg_home:
        env["GNUPGHOME"] = cfg.gpg_home
    cmd = ["git", "-C", gitdir, "-c", "core.hooksPath=/dev/null"]
    if cfg.allowed_signers:
        cmd += ["-c", f"gpg.ssh.allowedSignersFile={os.path.abspath(cfg.allowed_signers)}"]
    try:
        done = subprocess.run(
            cmd + list(args), capture_output=True, timeout=cfg.timeout_s, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        raise PolicyError(f"git {args[0]} timed out after {cfg.timeout_s}s") from None
    if done.returncode != 0:
        err = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise PolicyError(f"git {args[0]} failed: {err[-1] if err else done.returncode}")
    return done.stdout if binary else done.stdout.decode("utf-8", "replace")


def _is_remote(repo: str) -> bool:
    return "://" in repo or re.match(r"^[\w.-]+@[\w.-]+:", repo) is not None


def _gitdir(cfg: GitBundleConfig) -> str:
    """The repository to read: the local one, or a bare mirror of the remote one, fetched."""
    if not _is_remote(cfg.repo):
        if not Path(cfg.repo).exists():
            raise PolicyError(f"policy repository {cfg.repo} does not exist")
        return cfg.repo
    mirror = Path(cfg.mirror_dir)
    if not (mirror / "HEAD").exists():
        mirror.parent.mkdir(parents=True, exist_ok=True)
        _git(cfg, str(mirror.parent), "clone", "--bare", "--quiet", cfg.repo, mirror.name)
    _git(cfg, str(mirror), "fetch", "--quiet", "--force", cfg.repo, "+refs/*:refs/*")
    return str(mirror)


def resolve(cfg: GitBundleConfig) -> tuple[str, str]:
    """(git dir, commit id) of what the configuration points at now."""
    gitdir = _gitdir(cfg)
    target = cfg.commit or cfg.ref
    sha = _git(cfg, gitdir, "rev-parse", "--verify", "--quiet", f"{target}^{{commit}}").strip()
    if not _SHA.match(sha):
        raise PolicyError(f"cannot resolve {target!r} to a commit")
    return gitdir, sha


def _files(cfg: GitBundleConfig, gitdir: str, sha: str) -> dict[str, str]:
    prefix = cfg.path.strip("/")
    listing = _git(cfg, gitdir, "ls-tree", "-r", "-z", "--name-only", sha, "--", prefix or ".")
    names = [n for n in listing.split("\0") if n]
    if len(names) > _MAX_FILES:
        raise PolicyError(f"bundle has more than {_MAX_FILES} files")
    out: dict[str, str] = {}
    for name in names:
        rel = name[len(prefix) :].lstrip("/") if prefix else name
        if not (rel.endswith((".cedar", ".yaml", ".yml"))):
            continue
        data: bytes = _git(cfg, gitdir, "cat-file", "blob", f"{sha}:{name}", binary=True)
        if len(data) > _MAX_FILE_BYTES:
            raise PolicyError(f"{name}: larger than {_MAX_FILE_BYTES} bytes")
        out[rel] = data.decode("utf-8", "strict")
    return out


def load_git_bundle(cfg: GitBundleConfig, commit: str | None = None) -> LoadedBundle:
    """Resolve, verify, read, parse and test one commit. Raises PolicyError on any failure."""
    gitdir, sha = resolve(cfg)
    sha = commit or sha
    if cfg.require_signed:
        try:
            _git(cfg, gitdir, "verify-commit", sha)
        except PolicyError as exc:
            raise PolicyError(f"commit {sha[:12]} has no trusted signature ({exc})") from None
    files = _files(cfg, gitdir, sha)
    policies = [
        files[n] for n in sorted(files) if n.startswith("policies/") and n.endswith(".cedar")
    ]
    if not policies:
        raise PolicyError(f"commit {sha[:12]}: no policies/*.cedar in the bundle")
    text = "\n".join(([_default()] if cfg.include_default else []) + policies)
    bundle = PolicyBundle.parse(text, f"{cfg.repo}@{sha[:12]}", version=f"git:{sha}")
    cases = []
    for name in sorted(files):
        if name.startswith("tests/") and name.endswith((".yaml", ".yml")):
            cases += load_cases(files[name], f"{sha[:12]}:{name}")
    results = tuple(run_cases(PolicyEngine(bundle), cases))
    failed = [r for r in results if not r.passed]
    if failed:
        names = "; ".join(f"{r.case.name} (expected {r.case.expect}, got {r.got})" for r in failed)
        raise PolicyError(f"commit {sha[:12]}: {len(failed)} policy test(s) failed: {names}")
    guards: dict[str, Any] = {}
    if "guards.yaml" in files:
        loaded = yaml.safe_load(files["guards.yaml"]) or {}
        if not isinstance(loaded, dict):
            raise PolicyError(f"commit {sha[:12]}: guards.yaml must be a mapping")
        guards = loaded
    return LoadedBundle(sha, bundle, guards, results)


Installer = Callable[[LoadedBundle], Awaitable[None]]
Rejecter = Callable[[str, str], Awaitable[None]]


class GitBundleWatcher:
    """Polls the repository; installs each new commit that passes, refuses the others."""

    def __init__(self, cfg: GitBundleConfig, install: Installer, reject: Rejecter) -> None:
        self.cfg = cfg
        self.commit: str | None = None
        self._install, self._reject = install, reject
        self._refused: set[str] = set()

    async def check(self) -> bool:
        """One poll: True when a new commit was installed."""
        try:
            _, sha = await asyncio.to_thread(resolve, self.cfg)
        except PolicyError as exc:
            log.error("policy repository unreachable", extra={"error": str(exc)})
            return False
        if sha == self.commit or sha in self._refused:
            return False
        try:
            loaded = await asyncio.to_thread(load_git_bundle, self.cfg, sha)
        except (PolicyError, UnicodeDecodeError) as exc:
            self._refused.add(sha)
            log.error("policy bundle refused", extra={"commit": sha, "error": str(exc)})
            await self._reject(sha, str(exc))
            return False
        await self._install(loaded)
        self.commit = sha
        return True

    async def run(self) -> None:
        if self.cfg.commit is not None:
            return  # pinned: nothing to follow
        while True:
            await asyncio.sleep(self.cfg.poll_interval_s)
            await self.check()
