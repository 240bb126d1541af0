"""Regressions for what the fuzz targets (Tests/Fuzz) found, through real nginx + fcgiwrap and the CLI."""
import base64
import hashlib
import hmac
import json
from pathlib import Path

from conftest import assert_problem
from test_approve import TEAMS_TOKEN, awaiting, world  # noqa: F401 (world: the approvals stack, a fixture)


def test_text_with_nul_is_stored_whole(stack):
    # fuzz target `store`: text was bound with length -1, so SQLite cut it at the first NUL.
    r = stack.deploy("carol", "shop", "demo", "develop", reason="ship it\u0000 after the fix")
    assert r.status == 201, r
    assert r.json["reason"] == "ship it\u0000 after the fix"
    s = stack.request("GET", f"/api/v1/jobs/{r.json['id']}", token=stack.tokens["carol"])
    assert s.status == 200 and s.json["reason"] == "ship it\u0000 after the fix", s
    stored = stack.rows("SELECT length(CAST(reason AS BLOB)) FROM jobs WHERE id = ?", r.json["id"])
    assert stored == [(len("ship it\0 after the fix"),)]


def test_refusal_naming_a_project_with_nul_keeps_the_audit_chain_intact(stack):
    # The refusal's audit record hashed the whole subject but stored it cut at the NUL:
    # `draven audit verify` then reported the chain broken at that record.
    before = stack.rows("SELECT count(*) FROM jobs")
    r = stack.deploy("carol", "shop\u0000evil", "demo", "develop")
    assert r.status == 404, r
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert stack.rows("SELECT count(*) FROM jobs") == before
    assert stack.rows("SELECT subject FROM audit ORDER BY id DESC LIMIT 1") == [("shop\u0000evil/demo",)]
    out = stack.draven("audit", "verify", check=False)
    assert out.returncode == 0 and "intact" in out.stdout, out


def test_toml_values_without_a_json_form_are_named(stack, tmp_path):
    # fuzz target `toml`: TOMLKit writes nan, inf and 0x/0o/0b integers as they are in TOML, which
    # is not JSON: `draven apply` failed with "unexpected character ... at byte N" of a text the
    # user never saw. Now it names the key and the value, and applies nothing.
    before = stack.rows("SELECT count(*) FROM config_versions")
    config = (Path(__file__).parent / "draven.test.toml").read_text()
    for value, shown in [("nan", "NaN"), ("-inf", "-Infinity"), ("0x1F", "0x1F"), ("0o17", "0o17"), ("0b101", "0b101")]:
        f = tmp_path / "bad.toml"
        f.write_text(config + f"\n[fuzz]\nvalue = [1,\n  {value}]\n")
        out = stack.draven("apply", "-f", str(f), check=False)
        assert out.returncode == 2, out  # a configuration error
        assert f"{f}: fuzz.value: is {shown}: write numbers in decimal" in out.stderr, out.stderr
        assert "byte" not in out.stderr, out.stderr
    assert stack.rows("SELECT count(*) FROM config_versions") == before


def test_toml_that_crashed_the_parser_is_refused_not_a_crash(stack, tmp_path):
    # fuzz target `toml`: "[" and the end of the line made toml++ (TOMLKit) assert: draven apply
    # died of SIGABRT. Now the line is named. Valid documents with "[" starting a line inside a
    # value (a multi-line array, strings) or non-ASCII text in strings and comments are still read.
    before = stack.rows("SELECT count(*) FROM config_versions")
    for text, where, why in [
        ("[\n", "line 1", "a table header needs a name"), ("# c\n[[ \n", "line 2", "a table header needs a name"),
        ("[api]\ntoken_header = \"X-T\"\n[\t\r\n", "line 3", "a table header needs a name"),
        ("[[[", "line 1", "a table header needs a name"),
        # toml++ reaches __builtin_unreachable testing a non-ASCII character for whitespace
        ("a = 1\u00a1\n", "line 1", "a character outside a string or comment is not ASCII"),
        ("a=1\"\u00a1", "line 1", "a character outside a string or comment is not ASCII"),
        # toml++ asserts on a time without digits: it parses in a child process now
        ("a=1979-05-27T:", "(top level)", "the TOML parser (toml++) gave up on it (status 6); check the syntax"),
    ]:
        f = tmp_path / "bad.toml"
        f.write_bytes(text.encode())
        out = stack.draven("apply", "-f", str(f), check=False)
        assert out.returncode == 2, out  # a configuration error
        assert out.stderr.startswith(f"{f}: {where}: is not valid TOML: {why}"), out.stderr
        assert "toml.hpp" not in out.stderr and "Backtrac" not in out.stderr, out.stderr
    assert stack.rows("SELECT count(*) FROM config_versions") == before
    f = tmp_path / "valid.toml"
    f.write_text('x = [\n  [\n    1 ],\n]\ns = """\n[\n"""\nt = \'\'\'\n[\n\'\'\'\n[ "q" ] # [ ¡\n"é" = "¡"\n')
    out = stack.draven("apply", "-f", str(f), check=False)
    assert out.returncode == 2 and "is not valid TOML" not in out.stderr, out.stderr
    assert "x: is not a known setting" in out.stderr, out.stderr


def test_teams_hmac_with_a_high_byte_for_a_slash_is_refused(world):
    # fuzz target `signatures`: libsodium 1.0.18 decodes every byte >= 0x80 in base64 as '/', so a
    # Teams `Authorization: HMAC` with "é" (two bytes, C3 A9) where the MAC has "//" was accepted.
    stack, _ = world
    job = awaiting(stack, "teams")
    for n in range(20000):
        body = json.dumps({"type": "message", "id": f"fuzz-{n}", "text": f"<at>draven</at> approve {job}",
                           "from": {"id": "29:aad-alice-teams-id", "aadObjectId": "aad-alice"}}).encode()
        mac = base64.b64encode(hmac.new(base64.b64decode(TEAMS_TOKEN), body, hashlib.sha256).digest()).decode()
        if "//" in mac:
            break
    stack.wait_settled()  # the approval request's delivery is done
    before = stack.snapshot()
    altered = b"HMAC " + mac.replace("//", "\u00e9", 1).encode()
    r = stack.request("POST", "/chatops/teams", body, headers={"Authorization": altered})
    assert_problem(r, 401, "bad-signature")
    assert stack.snapshot() == before
    r = stack.request("POST", "/chatops/teams", body, headers={"Authorization": f"HMAC {mac}"})
    assert r.status == 200 and "alice approved" in r.json["text"], r
