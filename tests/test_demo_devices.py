"""End to end on the demo site: every camera's verdict from its OUI and what it said on the wire.

pcaps/README.md says what each device sends; rules/fingerprints/ holds the signatures. Two cameras
are OEM relabels: a Dahua camera with a Lorex MAC whose DHIP says Vendor "Lorex", and a Hikvision
camera whose Wi-Fi module gives it an Espressif MAC.
"""

from __future__ import annotations

from pathlib import Path

import orjson
from typer.testing import CliRunner

from auditor.cli import app

DEMO = Path(__file__).resolve().parents[1] / "pcaps" / "demo-site.pcap"

# MAC -> (maker, brand, class, model, firmware, how, confidence, signatures behind the verdict)
EXPECTED = {
    "00-1F-54-50-10-50": ("dahua", "Lorex", "camera", "IPC-HDW2431T-AS-S2", "2.800.0000000.25.R", "protocol", 0.989,
                          {"dahua-dhip", "dahua-dhip-firmware", "dahua-dhip-model", "dahua-dhip-vendor-oem",
                           "dahua-login-to-realm", "dahua-rtsp-server"}),
    "24-0A-C4-60-10-60": ("hikvision", None, "camera", "DS-2CV2041G2-IDW", "V5.5.800build 230615", "protocol", 0.986,
                          {"hik-connect-cloud", "hik-connect-dns", "hikvision-sadp", "hikvision-sadp-firmware",
                           "hikvision-sadp-model"}),
    "3C-EF-8C-30-10-30": ("dahua", None, "nvr", "DHI-NVR4208-8P-4KS2/L", "4.001.0000000.6", "protocol", 0.99,
                          {"dahua-dhip", "dahua-dhip-firmware", "dahua-dhip-model", "dahua-dhip-nvr",
                           "dahua-easy4ip-dns", "dahua-easy4ip-sni", "dahua-login-to-realm", "dahua-rtsp-server"}),
    "4C-BD-8F-21-10-21": ("hikvision", None, "camera", "DS-2CD2143G2-I", "V5.7.3build 220112", "protocol", 0.99,
                          {"hikvision-onvif-hardware", "hikvision-onvif-name", "hikvision-realm-rtsp", "hikvision-sadp",
                           "hikvision-sadp-firmware", "hikvision-sadp-model", "onvif-scope-video-transmitter",
                           "onvif-video-transmitter"}),
    # the OUI names EZVIZ; its cloud calls agree but could come from a person's phone: they only add confidence
    "58-8F-CF-40-10-40": ("ezviz", None, "camera", None, None, "oui-pin", 0.976,
                          {"ezviz-cloud", "ezviz-dns-ezvizlife", "ezviz-dns-ys7"}),
    "AC-CC-8E-4A-1B-2C": ("axis", None, "camera", "P3245-LV", "10.12.182", "protocol", 0.988,
                          {"axis-dhcp-camera-kind", "axis-dhcp-vendor-class", "axis-mdns-service"}),
    # the scanner says nothing the signatures know: its verdict is its MA-M block's
    "C0-9B-F4-B1-02-15": ("nuctech", None, "screening-scanner", None, None, "oui-pin", 0.8, set()),
}


def test_demo_devices_get_maker_brand_class_model_and_firmware_with_evidence(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["analyze", str(DEMO), "--out", str(out)])
    assert result.exit_code == 0, result.output
    devices = {d["mac"]: d for d in orjson.loads((out / "devices.json").read_bytes())["devices"]}
    got = {}
    for mac, d in devices.items():
        v = d["vendor"]
        if v is None:
            continue
        signatures = {s for e in v["evidence"] if e["source"] == "signature" for s in e["signatures"]}
        got[mac] = (v["id"], v["brand"], v["class"], v["model"], v["firmware"], v["how"], v["confidence"], signatures)
    assert got == EXPECTED
    # the gateway (MikroTik), the VMS (Dell) and the PC (Intel NIC) are no makers of the catalog and said
    # nothing a signature knows
    assert sorted(set(devices) - set(EXPECTED)) == ["00-0C-42-1A-2B-01", "00-14-22-0A-00-05", "00-1B-21-3A-4B-5C"]

    relabels = {mac: d["vendor"]["oem_relabel"] for mac, d in devices.items() if d["vendor"] and
                d["vendor"]["oem_relabel"]}
    assert relabels == {
        "00-1F-54-50-10-50": "made by Zhejiang Dahua Technology Co., Ltd.; the MAC's OUI belongs to Lorex Technology "
                             "Inc.; sold under another label: dhip vendor 'Lorex'",
        "24-0A-C4-60-10-60": "made by Hangzhou Hikvision Digital Technology Co., Ltd.; the MAC's OUI belongs to "
                             "Espressif Inc. (a network module or OEM)",
    }
    # the console lists both relabels in their own table
    table = result.output[result.output.index("OEM relabels"):]
    assert "00-1F-54-50-10-50" in table and "24-0A-C4-60-10-60" in table and "Lorex" in table
    # every fact a device stated is kept, matched or not (the Axis camera's DHCP host name matches nothing)
    axis = {(o["protocol"], o["field"], o["value"]) for o in devices["AC-CC-8E-4A-1B-2C"]["observed"]}
    assert ("dhcp", "hostname", "axis-accc8e4a1b2c") in axis
    csv = (out / "devices.csv").read_text().splitlines()
    assert csv[0].endswith("brand,model,firmware,oem_relabel")
    assert any(line.startswith("00-1F-54-50-10-50,") and ",Lorex,IPC-HDW2431T-AS-S2," in line for line in csv)
