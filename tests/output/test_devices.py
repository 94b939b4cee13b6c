"""Device outputs: JSON records, and CSV whose untrusted cells cannot run as spreadsheet formulas."""

from __future__ import annotations

import csv
import io
import json

from auditor.devices.types import DeviceAddress, DeviceRecord, ListEntry, OuiMatch, VendorVerdict
from auditor.output.devices import CSV_COLUMNS, device_document, neutralise, write_devices_csv, write_devices_json


def _record(org: str = "Hangzhou Hikvision Digital Technology Co.,Ltd.") -> DeviceRecord:
    return DeviceRecord(
        mac=0x4CBD8F211021,
        first_ns=1_793_610_000_000_000_000,
        last_ns=1_793_610_060_000_000_000,
        packets=22,
        bytes=15905,
        addresses=(DeviceAddress("192.168.10.21", 1_793_610_000_000_000_000, 1_793_610_060_000_000_000),),
        vlans=(20,),
        role="host",
        locally_administered=False,
        oui=OuiMatch(0x4CBD8F, 24, org),
        vendor=VendorVerdict(
            vendor_id="hikvision",
            name="Hikvision",
            device_class="camera",
            how="oui-pin",
            detail="4C-BD-8F/24",
            confidence=0.8,
            lists=(ListEntry("ndaa-889", "NDAA FY2019 section 889", "(a)(1)(B)", "2019-08-13"),),
        ),
    )


def test_device_document_has_vendor_lists_and_evidence() -> None:
    doc = device_document(_record())
    assert doc["mac"] == "4C-BD-8F-21-10-21"
    assert doc["ips"] == [
        {"ip": "192.168.10.21", "first_seen": "2026-11-02T09:00:00.000000Z", "last_seen": "2026-11-02T09:01:00.000000Z"}
    ]
    assert doc["oui"] == {"block": "4C-BD-8F/24", "organization": "Hangzhou Hikvision Digital Technology Co.,Ltd."}
    assert doc["vendor"]["lists"] == [
        {
            "id": "ndaa-889",
            "name": "NDAA FY2019 section 889",
            "clause": "(a)(1)(B)",
            "since": "2019-08-13",
            "note": None,
        }
    ]
    assert doc["vendor"]["evidence"] == [{"source": "oui-pin", "value": "4C-BD-8F/24"}]
    assert doc["vlans"] == [20] and doc["role"] == "host"


def test_devices_csv_neutralises_formula_cells() -> None:
    stream = io.StringIO()
    assert write_devices_csv([_record(org='=HYPERLINK("http://evil","x")'), _record(org="+1"), _record()], stream) == 3
    rows = list(csv.reader(io.StringIO(stream.getvalue())))
    assert tuple(rows[0]) == CSV_COLUMNS
    org = CSV_COLUMNS.index("organization")
    assert rows[1][org] == '\'=HYPERLINK("http://evil","x")'
    assert rows[2][org] == "'+1"
    assert rows[3][org] == "Hangzhou Hikvision Digital Technology Co.,Ltd."
    assert rows[1][CSV_COLUMNS.index("lists")] == "ndaa-889"


def test_neutralise_every_dangerous_start() -> None:
    for start in ("=", "+", "-", "@", "\t", "\r"):
        assert neutralise(start + "x") == "'" + start + "x"
    assert neutralise("Axis") == "Axis"


def test_devices_json_is_one_document_written_device_by_device() -> None:
    stream = io.BytesIO()
    assert write_devices_json([_record(), _record()], stream) == 2
    data = json.loads(stream.getvalue())
    assert [d["mac"] for d in data["devices"]] == ["4C-BD-8F-21-10-21"] * 2
    empty = io.BytesIO()
    assert write_devices_json([], empty) == 0
    assert json.loads(empty.getvalue()) == {"devices": []}


def test_neutralise_sees_a_formula_behind_control_characters_and_replaces_them() -> None:
    from auditor.output.devices import neutralise

    assert neutralise("\x00=HYPERLINK(\"http://x\")") == "'\ufffd=HYPERLINK(\"http://x\")"
    assert neutralise("IPC\x1b[31mred") == "IPC\ufffd[31mred"
    assert neutralise("plain text") == "plain text"
    assert neutralise("=1+1") == "'=1+1"
