"""C13 policy bundles from git: pinned, signed, tested, reloaded atomically, rolled back."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from maestro_gateway.policy import PolicyConfig, PolicyEngine, PolicyError, PolicyRuntime
from maestro_gateway.policy.git_bundle import (
    GitBundleConfig,
    GitBundleWatcher,
    LoadedBundle,
    load_git_bundle,
)

POLICY = """@id("no-nights")
forbid (principal, action == Action::"invoke", resource) when { context.hour < 6 };
"""
TESTS = """- name: an admin with MFA may register
  principal: {type: User, id: alice, roles: [registry-admin], mfa: true}
  action: register
  resource: {type: Agent, id: echo}
  expect: allow
- name: nobody invokes at night
  principal: {type: User, id: bob}
  action: invoke
  resource: {type: Agent, id: echo}
  context: {hour: 3}
  expect: deny
"""


def git(repo: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "HOME": str(repo.parent),
        "PATH": "/usr/bin:/bin",
    }
    out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, env=env, check=True)
    return out.stdout.decode().strip()


def commit(repo: Path, files: dict[str, str], key: Path | None = None) -> str:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    sign = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={key}"] if key else []
    git(repo, *sign, "commit", "-q", *(["-S"] if key else []), "-m", "policy change")
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "policies"
    r.mkdir()
    git(r, "init", "-q", "-b", "main")
    return r


def keypair(tmp_path: Path, name: str) -> tuple[Path, str]:
    key = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key, (tmp_path / f"{name}.pub").read_text().strip()


def test_bundle_loads_at_its_commit_and_decisions_carry_it(repo: Path) -> None:
    """The bundle's policies apply, and its version is the commit id."""
    sha = commit(repo, {"policies/main.cedar": POLICY, "tests/basic.yaml": TESTS})
    rt = PolicyRuntime.from_config(PolicyConfig(git=GitBundleConfig(repo=str(repo))))
    assert rt.engine.bundle.version == f"git:{sha}"
    d = rt.engine.decide(
        {"type": "Maestro::User", "id": "u"},
        "invoke",
        {"type": "Maestro::Agent", "id": "echo"},
        {"identity_required": True, "hour": 2},
        [],
    )
    assert not d.allowed
    assert d.record()["bundle"] == f"git:{sha}"


def test_pinned_commit_ignores_later_commits(repo: Path) -> None:
    """With ``commit`` set, later commits on the branch are not used."""
    first = commit(repo, {"policies/main.cedar": POLICY})
    commit(repo, {"policies/main.cedar": POLICY + "\n// changed\n"})
    loaded = load_git_bundle(GitBundleConfig(repo=str(repo), commit=first))
    assert loaded.commit == first


def test_work_tree_edits_are_not_read(repo: Path) -> None:
    """Only committed content counts: an uncommitted edit changes nothing."""
    commit(repo, {"policies/main.cedar": POLICY})
    (repo / "policies" / "main.cedar").write_text("permit (principal, action, resource);")
    loaded = load_git_bundle(GitBundleConfig(repo=str(repo)))
    assert "no-nights" in loaded.bundle.text
    assert "permit (principal, action, resource);" not in loaded.bundle.text


def test_failing_policy_test_refuses_the_bundle(repo: Path) -> None:
    """A bundle whose own tests fail is not accepted, and the failure is named."""
    bad = TESTS.replace("context: {hour: 3}", "context: {hour: 12}")
    commit(repo, {"policies/main.cedar": POLICY, "tests/basic.yaml": bad})
    with pytest.raises(PolicyError, match="nobody invokes at night"):
        load_git_bundle(GitBundleConfig(repo=str(repo)))


def test_signed_commits_required(repo: Path, tmp_path: Path) -> None:
    """With require_signed, an unsigned commit or one signed by an untrusted key is refused."""
    trusted, trusted_pub = keypair(tmp_path, "trusted")
    other, _ = keypair(tmp_path, "other")
    signers = tmp_path / "allowed_signers"
    signers.write_text(f'policy@example.com namespaces="git" {trusted_pub}\n')
    cfg = GitBundleConfig(repo=str(repo), require_signed=True, allowed_signers=str(signers))
    commit(repo, {"policies/main.cedar": POLICY})
    with pytest.raises(PolicyError, match="no trusted signature"):
        load_git_bundle(cfg)
    commit(repo, {"policies/main.cedar": POLICY + "\n"}, key=other)
    with pytest.raises(PolicyError, match="no trusted signature"):
        load_git_bundle(cfg)
    good = commit(repo, {"policies/main.cedar": POLICY + "\n\n"}, key=trusted)
    assert load_git_bundle(cfg).commit == good


def test_remote_repository_is_mirrored(repo: Path, tmp_path: Path) -> None:
    """A URL is fetched into a local bare mirror and read from there."""
    sha = commit(repo, {"policies/main.cedar": POLICY})
    cfg = GitBundleConfig(repo=f"file://{repo}", mirror_dir=str(tmp_path / "mirror.git"))
    assert load_git_bundle(cfg).commit == sha
    sha2 = commit(repo, {"policies/main.cedar": POLICY + "\n"})
    assert load_git_bundle(cfg).commit == sha2


async def test_watcher_installs_good_commits_and_keeps_running_bundle_on_bad(
    repo: Path,
) -> None:
    """A new good commit is swapped in; a commit that does not parse is refused and reported."""
    first = commit(repo, {"policies/main.cedar": POLICY, "tests/basic.yaml": TESTS})
    cfg = GitBundleConfig(repo=str(repo))
    engine = PolicyEngine(load_git_bundle(cfg).bundle)
    rejected: list[str] = []

    async def install(loaded: LoadedBundle) -> None:
        engine.swap(loaded.bundle)

    async def reject(sha: str, why: str) -> None:
        rejected.append(sha)

    watcher = GitBundleWatcher(cfg, install, reject)
    assert await watcher.check()
    assert engine.bundle.version == f"git:{first}"
    broken = commit(repo, {"policies/main.cedar": "forbid (principal, action"})
    assert not await watcher.check()
    assert rejected == [broken]
    assert engine.bundle.version == f"git:{first}"  # rolled back: the good bundle stays
    assert not await watcher.check()  # a refused commit is not retried
    fixed = commit(repo, {"policies/main.cedar": POLICY + "\n// fixed\n"})
    assert await watcher.check()
    assert engine.bundle.version == f"git:{fixed}"


def test_guard_settings_come_with_the_bundle(repo: Path) -> None:
    """guards.yaml in the bundle is loaded as an overlay for the guard settings."""
    commit(repo, {"policies/main.cedar": POLICY, "guards.yaml": "waf:\n  paranoia_level: 2\n"})
    rt = PolicyRuntime.from_config(PolicyConfig(git=GitBundleConfig(repo=str(repo))))
    assert rt.guards_overlay == {"waf": {"paranoia_level": 2}}
