"""Shared command-line inputs: the proxy CA is found without writing, assembled only to build."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tf2aif.cli.common import ProxyCA, find_proxy_ca, write_proxy_ca
from tf2aif.cli.main import main


@pytest.fixture
def certs(tmp_path, monkeypatch):
    folder = tmp_path / "certs"
    folder.mkdir()
    (folder / "b.crt").write_text("B\n")
    (folder / "a.crt").write_text("A\n")
    (folder / "readme.txt").write_text("not a certificate\n")
    monkeypatch.setattr("tf2aif.cli.common.SYSTEM_CERTS", folder)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    return folder


def test_precedence_is_flag_then_env_then_system_certificates(certs, tmp_path):
    env = {"TF2AIF_CA_FILE": "/env/ca.pem"}
    assert find_proxy_ca("/flag/ca.pem", env) == ProxyCA(path=Path("/flag/ca.pem"))
    assert find_proxy_ca(None, env).path.as_posix() == "/env/ca.pem"
    found = find_proxy_ca(None, {})
    assert [p.name for p in found.parts] == ["a.crt", "b.crt"]
    assert found.path == tmp_path / "tmp" / "tf2aif-ca" / "ca.pem"
    assert find_proxy_ca(None, {}, certs=tmp_path / "none") is None


def test_finding_writes_nothing_and_writing_assembles_in_order(certs, tmp_path):
    found = find_proxy_ca(None, {})
    assert not found.path.exists()
    assert write_proxy_ca(found) == str(found.path)
    assert found.path.read_text() == "A\nB\n"
    assert write_proxy_ca(None) is None
    given = ProxyCA(path=tmp_path / "given.pem")
    assert write_proxy_ca(given) == str(given.path) and not given.path.exists()


def test_bases_print_names_the_bundle_but_writes_none(certs, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TF2AIF_STATE", str(tmp_path / "state"))
    monkeypatch.delenv("TF2AIF_CA_FILE", raising=False)
    assert main(["bases", "--local", "--print"]) == 0
    bundle = tmp_path / "tmp" / "tf2aif-ca" / "ca.pem"
    assert str(bundle) in capsys.readouterr().out
    assert not bundle.exists()
