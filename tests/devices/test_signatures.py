"""Protocol signatures (auditor/devices/signatures.py): the shipped folder loads against the shipped
vendor ids; exact, regex and domain patterns match as documented; a wrong file is refused with
file:line: field."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditor.devices.signatures import Match, SignatureSet, load_signatures
from auditor.devices.vendors import load_vendors
from auditor.errors import ConfigError, RuleFileError

REPO = Path(__file__).resolve().parents[2]
FINGERPRINTS = REPO / "rules" / "fingerprints"
VENDOR_IDS = frozenset(v.id for v in load_vendors(REPO / "rules" / "vendors.yaml").vendors)


@pytest.fixture(scope="module")
def shipped() -> SignatureSet:
    return load_signatures(FINGERPRINTS, VENDOR_IDS)


def ids(matches: list[Match]) -> list[str]:
    return [m.signature.id for m in matches]


def write(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text(body, encoding="utf-8")
    return path


# -- the shipped folder ---------------------------------------------------------------------------


def test_load_signatures_reads_the_shipped_folder(shipped: SignatureSet) -> None:
    assert len(shipped) > 40
    assert shipped.sources == [str(FINGERPRINTS / "surveillance.yaml")]
    all_ids = [s.id for s in shipped.signatures]
    assert len(set(all_ids)) == len(all_ids)
    makers = {s.implies.maker for s in shipped.signatures} - {None}
    assert makers <= VENDOR_IDS
    assert {"hikvision", "ezviz", "dahua", "imou", "axis"} <= makers


def test_load_signatures_refuses_a_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_signatures(tmp_path / "nope", VENDOR_IDS)
    assert str(exc.value) == f"{tmp_path / 'nope'}: no such signature file or folder"


# -- exact ----------------------------------------------------------------------------------------


def test_match_exact_ignores_case(shipped: SignatureSet) -> None:
    assert ids(shipped.match("dvrip", "message", "reply")) == ["dahua-dvrip-reply"]
    assert ids(shipped.match("dvrip", "message", "REPLY")) == ["dahua-dvrip-reply"]
    assert ids(shipped.match("dahua-v1", "message", "Reply")) == ["dahua-v1-reply"]


def test_match_exact_wants_the_whole_value(shipped: SignatureSet) -> None:
    assert shipped.match("dvrip", "message", "reply ") == ()
    assert shipped.match("dvrip", "message", "replying") == ()
    assert shipped.match("dvrip", "message", "request") == ()


def test_match_only_looks_at_its_protocol_and_field(shipped: SignatureSet) -> None:
    assert shipped.match("dvrip", "command", "reply") == ()
    assert shipped.match("dahua-v2", "message", "reply") == ()
    assert shipped.match("sadp", "nosuchfield", "hello") == ()


# -- regex ----------------------------------------------------------------------------------------


def test_match_regex_searches_case_insensitively(shipped: SignatureSet) -> None:
    assert ids(shipped.match("sadp", "message", "hello")) == ["hikvision-sadp"]
    assert ids(shipped.match("sadp", "message", "HELLO")) == ["hikvision-sadp"]
    assert ids(shipped.match("sadp", "message", "probe")) == []
    # search: the pattern need not cover the whole value, and it ignores case
    assert ids(shipped.match("ssdp", "server", "Linux/4.9.206-axis8, UPnP/1.0, Portable SDK")) == ["axis-ssdp-server"]
    assert ids(shipped.match("ssdp", "server", "LINUX/4.9-AXIS8")) == ["axis-ssdp-server"]
    # narrow on purpose: a name merely containing "axis" is no Axis device (rules/README.md false friends)
    assert ids(shipped.match("ssdp", "server", "Galaxis/1.0 UPnP/1.0")) == []
    assert ids(shipped.match("ssdp", "server", "Linux/5.4 UPnP/1.0 axis-friendly-server")) == []


def test_match_regex_takes_model_and_firmware_from_named_groups(shipped: SignatureSet) -> None:
    matches = shipped.match("dhcp", "vendor_class", "AXIS,Network Camera,P3245-LV,10.12.182")
    assert [(m.signature.id, m.model, m.firmware) for m in matches] == [
        ("axis-dhcp-vendor-class", "P3245-LV", "10.12.182"), ("axis-dhcp-camera-kind", None, None)]
    # an Axis door controller is an Axis device, but no camera
    door = shipped.match("dhcp", "vendor_class", "AXIS,Network Door Controller,A1001,1.65.2")
    assert [m.signature.id for m in door] == ["axis-dhcp-vendor-class"]
    [m] = shipped.match("sadp", "firmware", "V5.5.82build 190909")
    assert (m.signature.id, m.model, m.firmware) == ("hikvision-sadp-firmware", None, "V5.5.82build 190909")


def test_match_regex_leaves_model_none_without_the_group(shipped: SignatureSet) -> None:
    [m] = shipped.match("rtsp", "server", "Dahua Rtsp Server/3.0")
    assert (m.signature.id, m.model, m.firmware) == ("dahua-rtsp-server", None, None)


def test_match_regex_returns_every_matching_signature(shipped: SignatureSet) -> None:
    matches = shipped.match("dhip", "device_type", "DHI-NVR4104HS-P-4KS2")
    assert [(m.signature.id, m.model) for m in matches] == [
        ("dahua-dhip-model", "DHI-NVR4104HS-P-4KS2"),
        ("dahua-dhip-nvr", "DHI-NVR4104HS-P-4KS2"),
    ]
    matches = shipped.match("sadp", "model", "DS-7608NI-K2/8P")
    assert [(m.signature.id, m.model) for m in matches] == [
        ("hikvision-sadp-model", "DS-7608NI-K2/8P"),
        ("hikvision-sadp-nvr-model", "DS-7608NI-K2/8P"),
    ]
    assert [(m.signature.id, m.model) for m in shipped.match("sadp", "model", "DS-2CD2143G2-I")] == [
        ("hikvision-sadp-model", "DS-2CD2143G2-I"),
    ]


def test_match_regex_empty_named_group_is_none(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", """\
version: 1
signatures:
  - id: x
    protocol: http
    field: server
    regex: '^cam(?P<model>[0-9]*)'
    implies: {class: camera}
    weight: 0.5
""")
    sigs = load_signatures(path, None)
    assert [(m.model, m.firmware) for m in sigs.match("http", "server", "cam")] == [(None, None)]
    assert [(m.model, m.firmware) for m in sigs.match("http", "server", "cam42")] == [("42", None)]


# -- domain ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "matched"),
    [
        ("hik-connect.com", ["hik-connect-cloud"]),
        ("litedev.hik-connect.com", ["hik-connect-cloud"]),
        ("a.b.litedev.hik-connect.com", ["hik-connect-cloud"]),
        ("HIK-CONNECT.COM.", ["hik-connect-cloud"]),
        ("LiteDev.Hik-Connect.Com", ["hik-connect-cloud"]),
        ("nothik-connect.com", []),
        ("hik-connect.com.evil.net", []),
        ("hik-connect.co", []),
        ("connect.com", []),
        ("", []),
    ],
)
def test_match_domain_stops_at_label_boundaries(shipped: SignatureSet, value: str, matched: list[str]) -> None:
    assert ids(shipped.match("tls", "sni", value)) == matched


def test_match_domain_is_per_field(shipped: SignatureSet) -> None:
    assert ids(shipped.match("dns", "query", "litedev.hik-connect.com")) == ["hik-connect-dns"]
    assert ids(shipped.match("http", "host", "litedev.hik-connect.com")) == ["hik-connect-cloud-http"]
    assert ids(shipped.match("tls", "sni", "time.ys7.com")) == ["ezviz-cloud-ys7"]


# -- bad files ------------------------------------------------------------------------------------

HEAD = """\
version: 1
signatures:
  - id: a
    protocol: sadp
    field: message
"""


@pytest.mark.parametrize(
    ("body", "line", "field", "message"),
    [
        pytest.param(
            "    exact: hello\n    implies: {maker: hikvision}\n    weight: 0.5\n    wieght: 0.5\n",
            9, "signatures[0].wieght", "unknown field", id="unknown-field",
        ),
        pytest.param(
            "    exact: hello\n    regex: hello\n    implies: {maker: hikvision}\n    weight: 0.5\n",
            3, "signatures[0]", "give exactly one of exact, regex, domain", id="two-patterns",
        ),
        pytest.param(
            "    implies: {maker: hikvision}\n    weight: 0.5\n",
            3, "signatures[0]", "give exactly one of exact, regex, domain", id="no-pattern",
        ),
        pytest.param(
            "    regex: '(hello'\n    implies: {maker: hikvision}\n    weight: 0.5\n",
            6, "signatures[0].regex",
            "'(hello' is not a regular expression: missing ), unterminated subpattern at position 0",
            id="bad-regex",
        ),
        pytest.param(
            "    domain: Hik-Connect.com\n    implies: {maker: hikvision}\n    weight: 0.5\n",
            6, "signatures[0].domain", "'Hik-Connect.com' is not a domain name (lower case, e.g. hik-connect.com)",
            id="domain-upper-case",
        ),
        pytest.param(
            "    domain: '*.hik-connect.com'\n    implies: {maker: hikvision}\n    weight: 0.5\n",
            6, "signatures[0].domain", "'*.hik-connect.com' is not a domain name (lower case, e.g. hik-connect.com)",
            id="domain-wildcard",
        ),
        pytest.param(
            "    domain: localhost\n    implies: {maker: hikvision}\n    weight: 0.5\n",
            6, "signatures[0].domain", "'localhost' is not a domain name (lower case, e.g. hik-connect.com)",
            id="domain-one-label",
        ),
        pytest.param(
            "    exact: hello\n    implies: {maker: hikvision}\n    weight: 1\n",
            8, "signatures[0].weight", "Input should be less than 1", id="weight-1",
        ),
        pytest.param(
            "    exact: hello\n    implies: {maker: hikvision}\n    weight: 0\n",
            8, "signatures[0].weight", "Input should be greater than 0", id="weight-0",
        ),
        pytest.param(
            "    exact: hello\n    implies: {maker: hikvision}\n    weight: -0.2\n",
            8, "signatures[0].weight", "Input should be greater than 0", id="weight-negative",
        ),
        pytest.param(
            # the check runs on the signature, so it names the signature's line, not the implies line
            "    exact: hello\n    implies: {}\n    weight: 0.5\n",
            3, "signatures[0]", "implies: give at least one of maker, brand, class, oem", id="implies-empty",
        ),
        pytest.param(
            "    exact: hello\n    implies: {maker: acme}\n    weight: 0.5\n",
            7, "signatures[0].implies.maker", "no vendor with id 'acme' in the vendor catalog", id="unknown-maker",
        ),
        pytest.param(
            "    exact: hello\n    implies:\n      class: toaster\n    weight: 0.5\n",
            8, "signatures[0].implies.class",
            "Input should be 'camera', 'nvr', 'screening-scanner', 'drone', 'radio', 'network', 'phone', "
            "'computer', 'iot' or 'other'",
            id="class-not-allowed",
        ),
    ],
)
def test_load_signatures_names_file_line_and_field(tmp_path: Path, body: str, line: int, field: str,
                                                   message: str) -> None:
    path = write(tmp_path, "bad.yaml", HEAD + body)
    with pytest.raises(RuleFileError) as exc:
        load_signatures(path, VENDOR_IDS)
    assert (exc.value.path, exc.value.line, exc.value.field) == (str(path), line, field)
    assert str(exc.value) == f"{path}:{line}: {field}: {message}"


def test_load_signatures_without_a_catalog_accepts_any_maker(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", HEAD + "    exact: hello\n    implies: {maker: acme}\n    weight: 0.5\n")
    sigs = load_signatures(path, None)
    assert [(m.signature.id, m.signature.implies.maker) for m in sigs.match("sadp", "message", "Hello")] == [
        ("a", "acme")
    ]


def test_load_signatures_refuses_an_id_defined_in_two_files(tmp_path: Path) -> None:
    one = HEAD + "    exact: hello\n    implies: {maker: hikvision}\n    weight: 0.5\n"
    two = HEAD.replace("  - id: a\n", "  - id: b\n    protocol: x\n    field: y\n    exact: z\n"
                       "    implies: {maker: dahua}\n    weight: 0.5\n  - id: a\n") + \
        "    exact: probematch\n    implies: {maker: hikvision}\n    weight: 0.5\n"
    write(tmp_path, "1-first.yaml", one)
    second = write(tmp_path, "2-second.yaml", two)
    with pytest.raises(RuleFileError) as exc:
        load_signatures(tmp_path, VENDOR_IDS)
    assert (exc.value.path, exc.value.line, exc.value.field) == (str(second), 9, "signatures[1].id")
    assert str(exc.value) == (
        f"{second}:9: signatures[1].id: signature id 'a' is already defined at {tmp_path / '1-first.yaml'}:3"
    )


def test_load_signatures_refuses_an_id_twice_in_one_file(tmp_path: Path) -> None:
    sig = "  - id: a\n    protocol: sadp\n    field: message\n    exact: hello\n    implies: {class: camera}\n" \
          "    weight: 0.5\n"
    path = write(tmp_path, "s.yaml", "version: 1\nsignatures:\n" + sig + sig)
    with pytest.raises(RuleFileError) as exc:
        load_signatures(path, VENDOR_IDS)
    assert str(exc.value) == f"{path}:9: signatures[1].id: signature id 'a' is already defined at {path}:3"


def test_load_signatures_refuses_an_empty_list(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", "version: 1\nsignatures: []\n")
    with pytest.raises(RuleFileError) as exc:
        load_signatures(path, VENDOR_IDS)
    assert (exc.value.line, exc.value.field) == (2, "signatures")


# -- folders --------------------------------------------------------------------------------------


def _one(sig_id: str, value: str) -> str:
    return (f"version: 1\nsignatures:\n  - id: {sig_id}\n    protocol: http\n    field: server\n"
            f"    exact: {value}\n    implies: {{class: camera}}\n    weight: 0.5\n")


def test_load_signatures_reads_a_folder_in_name_order(tmp_path: Path) -> None:
    write(tmp_path, "b.yaml", _one("from-b", "cam"))
    write(tmp_path, "a.yml", _one("from-a", "cam"))
    write(tmp_path, "c.yaml", _one("from-c", "cam"))
    write(tmp_path, "README.md", "not a signature file")
    write(tmp_path, "d.yaml.bak", "not: [valid")
    (tmp_path / "sub.yaml").mkdir()
    sigs = load_signatures(tmp_path, VENDOR_IDS)
    assert sigs.sources == [str(tmp_path / "a.yml"), str(tmp_path / "b.yaml"), str(tmp_path / "c.yaml")]
    assert [s.id for s in sigs.signatures] == ["from-a", "from-b", "from-c"]
    assert ids(sigs.match("http", "server", "CAM")) == ["from-a", "from-b", "from-c"]


def test_load_signatures_leaves_hidden_files_out(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", _one("from-a", "cam"))
    write(tmp_path, "._a.yaml", "\x00\x05\x16\x07 AppleDouble junk")
    sigs = load_signatures(tmp_path, VENDOR_IDS)
    assert sigs.sources == [str(tmp_path / "a.yaml")]


def test_match_results_are_remembered_and_equal_a_fresh_match() -> None:
    shipped = load_signatures(FINGERPRINTS, None)
    first = shipped.match("sadp", "message", "hello")
    assert first and shipped.match("sadp", "message", "hello") is first  # the same answer, not recomputed
    fresh = load_signatures(FINGERPRINTS, None)
    assert fresh.match("sadp", "message", "hello") == first
