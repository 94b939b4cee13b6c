"""The vendor verdicts on real traffic (../shared/pcaps/real; skipped when absent).

The corpus holds no MAC of a listed vendor (its two cameras are D-Link and Edimax), so its
camera captures are also run with the camera's MAC rewritten to a Hikvision or Dahua OUI: real
setup traffic, as a covered camera would send it.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from auditor.cli import app
from auditor.config import Settings
from auditor.devices.oui import OuiRegistry, candidate_prefixes, is_group, is_locally_administered
from auditor.devices.table import DeviceTable
from auditor.devices.vendors import load_vendors
from auditor.devices.verdicts import DeviceVerdicts, device_records
from auditor.flows.localnet import DEFAULT_LOCAL_NETWORKS, LocalNetworks
from auditor.pipeline import analyze_files
from tests.conftest import corpus_files

pytestmark = pytest.mark.corpus

ROOT = Path(__file__).resolve().parents[2]
RESEARCH = ROOT.parent / "shared" / "research" / "vendor_ouis_full.csv"
CAMERAS = {  # corpus file -> (the camera's MAC per the MANIFEST, the MAC it is rewritten to, vendor)
    "iotsentinel__D-LinkDayCam_Setup-C-1.pcap": ("b0:c5:54:1c:71:85", "4c:bd:8f:1c:71:85", "hikvision"),
    "iotsentinel__EdimaxCam2_Setup-C-2.pcap": ("74:da:38:80:79:fc", "3c:ef:8c:80:79:fc", "dahua"),
}


def _researched() -> dict[tuple[int, int], str]:
    """(bits, prefix) -> vendor group, from the research table (independent of rules/vendors.yaml)."""
    out = {}
    with open(RESEARCH, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            digits = row["assignment"].strip()
            out[(len(digits) * 4, int(digits, 16))] = row["vendor_group"].strip()
    return out


def test_every_corpus_mac_of_a_researched_vendor_is_reported_with_that_vendor(corpus: Path) -> None:
    if not RESEARCH.is_file():
        pytest.skip(f"{RESEARCH} is absent")
    catalog = load_vendors(ROOT / "rules" / "vendors.yaml")
    researched = _researched()
    local = LocalNetworks(DEFAULT_LOCAL_NETWORKS)
    table = DeviceTable(local.contains)
    analyze_files(corpus_files(), Settings(), lambda records: None, devices=table, prefetch=False)
    records = device_records(table, DeviceVerdicts(OuiRegistry.default(ROOT / "no-state"), catalog))
    assert len(records) > 100  # the corpus has a few hundred senders: the run really read it
    checked = 0
    for d in records:
        assert d.locally_administered == is_locally_administered(d.mac)
        if is_group(d.mac) or d.locally_administered:
            assert d.vendor is None
            continue
        group = next((researched[k] for k in candidate_prefixes(d.mac) if k in researched), None)
        if group is not None and catalog.get(group) is not None:
            checked += 1
            assert d.vendor is not None and d.vendor.vendor_id == group, f"{d.mac:012x}"
        elif d.vendor is not None:
            assert d.vendor.how in ("oui-pin", "org-pattern")
            assert not d.vendor.lists, f"{d.mac:012x}: a listed vendor the research table does not know"
    # today no corpus MAC is in the research table; this records it, so a new capture shows up here
    assert checked == 0


@pytest.mark.parametrize("name", sorted(CAMERAS))
def test_a_real_camera_rewritten_to_a_covered_oui_is_reported_and_judged(
    corpus: Path, tmp_path: Path, name: str
) -> None:
    original, rewritten, vendor = CAMERAS[name]
    data = (corpus / name).read_bytes()
    old, new = bytes.fromhex(original.replace(":", "")), bytes.fromhex(rewritten.replace(":", ""))
    assert data.count(old) > 10
    capture = tmp_path / name
    capture.write_bytes(data.replace(old, new))

    # the shipped default: the setup traffic stays on the LAN (DHCP, mDNS, SSDP, IGMP): no alert
    out = tmp_path / "default"
    result = CliRunner().invoke(app, ["analyze", str(capture), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    devices = json.loads((out / "devices.json").read_text())["devices"]
    camera = next(d for d in devices if d["mac"] == rewritten.replace(":", "-").upper())
    assert camera["vendor"]["id"] == vendor
    assert [m["id"] for m in camera["vendor"]["lists"]] == ["ndaa-889", "fcc-covered"]
    flows = [orjson.loads(line) for line in (out / "flows.jsonl").read_bytes().splitlines()]
    started = [f for f in flows if f["source"].get("mac") == camera["mac"]]
    assert started and all(f["network"]["direction"] == "internal" for f in started)
    assert (out / "alerts.jsonl").read_bytes() == b""

    # a site that approves nothing for listed vendors: every flow the camera started is a finding,
    # summed per destination
    rules = tmp_path / "strict.yaml"
    rules.write_text("version: 1\npolicies:\n  - id: nothing\n    name: Listed vendors may send nothing\n"
                     "    devices:\n      - lists: ndaa-889\n    severity: high\n")
    out = tmp_path / "strict"
    result = CliRunner().invoke(app, ["analyze", str(capture), "--out", str(out), "-q", "--rules", str(rules)])
    assert result.exit_code == 0, result.output
    alerts = [orjson.loads(line) for line in (out / "alerts.jsonl").read_bytes().splitlines()]
    assert {a["destination"]["ip"] for a in alerts} == {f["destination"]["ip"] for f in started}
    for a in alerts:
        assert (a["source"]["mac"], a["rule"]["id"], a["labels"]["ndaa-889"][:9]) == (camera["mac"], "nothing",
                                                                                     "(f)(3)(B)")
        mine = [f for f in started if f["destination"]["ip"] == a["destination"]["ip"]]
        assert a["auditor"]["flows"] == len(mine)
        assert a["source"]["packets"] == sum(f["source"]["packets"] for f in mine)
        assert a["source"]["bytes"] == sum(f["source"]["bytes"] for f in mine)
        ids = a["auditor"]["community_ids"]
        assert set(ids) <= {f["network"]["community_id"] for f in mine} and len(ids) == min(5, len(mine))


@pytest.mark.parametrize(("name", "mac", "model", "confidence"), [
    # SSDP SERVER "Cellvision" (0.5) and DHCP host name DCS-930LB (0.6): 1 - 0.5 * 0.4
    ("iotsentinel__D-LinkDayCam_Setup-C-1.pcap", "B0-C5-54-1C-71-85", "DCS-930LB", 0.8),
    # SSDP LOCATION .../IPCamDesc.xml (0.6) and mDNS TXT "IC-3115W Network Camera" (0.6): 1 - 0.4 * 0.4
    ("iotsentinel__EdimaxCam2_Setup-C-2.pcap", "74-DA-38-80-79-FC", "IC-3115W", 0.84),
])
def test_the_real_cameras_are_classed_as_cameras_from_protocol_evidence(
    corpus: Path, tmp_path: Path, name: str, mac: str, model: str, confidence: float
) -> None:
    """Neither D-Link nor Edimax is in the vendor catalog: the class can only come from what they said."""
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["analyze", str(corpus / name), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    device = next(d for d in json.loads((out / "devices.json").read_text())["devices"] if d["mac"] == mac)
    verdict = device["vendor"]
    assert (verdict["id"], verdict["class"], verdict["how"], verdict["model"]) == (None, "camera", "protocol", model)
    assert verdict["confidence"] == confidence
    clues = {(e["protocol"], e["field"]) for e in verdict["evidence"] if e["source"] == "signature"}
    assert len(clues) == 2 and all(protocol in ("ssdp", "mdns", "dhcp") for protocol, _ in clues)
    # and it searched for an internet gateway to open ports on (SSDP M-SEARCH for IGD)
    assert {"protocol": "ssdp", "field": "igd_search", "value": "true"}.items() <= next(
        o for o in device["observed"] if o["field"] == "igd_search").items()
