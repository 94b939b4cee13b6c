"""The columnar alert accumulator: rows found by key, sums, growth, caps and the flow samples."""

from __future__ import annotations

import numpy as np

from auditor.policy.sums import KEY, MAX_SAMPLES, MAX_VLANS, NO_VLAN, AlertSums, Findings


def findings(dst_lo: list[int], vlan: list[int] | None = None, port: list[int] | None = None,
             first: list[int] | None = None) -> Findings:
    n = len(dst_lo)
    key = np.zeros(n, dtype=KEY)
    key["mac"], key["dst_version"], key["dst_lo"] = 0x4CBD8F000001, 4, dst_lo
    u64 = np.ones(n, dtype=np.uint64)
    times = np.array(first if first is not None else range(n), dtype=np.int64)
    return Findings(
        key=key, selector=np.zeros(n, np.int32), dst_local=np.zeros(n, bool), first_ns=times, last_ns=times + 10,
        src_packets=u64, src_bytes=u64 * 100, dst_packets=u64 * 2, dst_bytes=u64 * 50,
        src_version=np.full(n, 4, np.uint8), src_hi=np.zeros(n, np.uint64), src_lo=np.full(n, 0x0A000001, np.uint64),
        proto=np.full(n, 6, np.uint8), port=np.array(port if port is not None else [443] * n, np.uint16),
        vlan=np.array(vlan if vlan is not None else [NO_VLAN] * n, np.uint16),
        sport=np.arange(n, dtype=np.uint16) + 40000, dport=np.array(port if port is not None else [443] * n, np.uint16),
    )


def limits(sums: AlertSums, n: int = 100_000) -> np.ndarray:  # type: ignore[type-arg]
    return np.full(n, sums.max_alerts, dtype=np.int64)


def test_sums_rows_by_key_across_batches_and_grows_past_the_first_block() -> None:
    sums = AlertSums(max_alerts=10_000)
    sums.add(findings(list(range(3000))), limits(sums, 3000))
    sums.add(findings(list(range(1500, 4500)), first=[-5] * 3000), limits(sums, 3000))
    assert len(sums) == 4500
    flows = sums.column("flows")
    assert flows[:1500].tolist() == [1] * 1500 and flows[1500:3000].tolist() == [2] * 1500
    assert sums.column("src_bytes")[1500] == 200 and sums.column("dst_packets")[1500] == 4
    assert sums.column("first_ns")[1500] == -5 and sums.column("last_ns")[2999] == 2999 + 10
    assert sums.column("dst_lo").tolist() == list(range(4500))
    assert sums.dropped == 0


def test_sums_stop_at_max_alerts_and_count_the_rest() -> None:
    sums = AlertSums(max_alerts=3)
    kept = sums.add(findings([1, 2, 3, 4, 4, 1]), limits(sums)[:6])
    assert kept.tolist() == [True, True, True, False, False, True]
    assert len(sums) == 3 and sums.dropped == 2
    assert sums.column("flows").tolist() == [2, 1, 1]


def test_sums_make_new_rows_only_below_each_flows_limit() -> None:
    sums = AlertSums(max_alerts=3)
    kept = sums.add(findings([1, 2, 3, 1]), np.array([2, 2, 2, 2], dtype=np.int64))
    assert kept.tolist() == [True, True, False, True]  # a third row would pass the limit of 2
    kept = sums.add(findings([3]), np.array([3], dtype=np.int64))
    assert kept.tolist() == [True] and len(sums) == 3


def test_extras_keep_other_services_and_vlans_up_to_their_caps_and_the_first_samples() -> None:
    sums = AlertSums(max_alerts=10)
    n = 40
    batch = findings([7] * n, vlan=[NO_VLAN, *range(1, n)], port=[443, *(8000 + i for i in range(1, n))])
    sums.add(batch, limits(sums, n))
    extra = sums.extras[0]
    assert sums.column("vlan")[0] == NO_VLAN and sums.column("port")[0] == 443
    assert extra.vlans == list(range(1, MAX_VLANS + 1))  # no first VLAN: all MAX_VLANS come from extras
    assert len(extra.services) == 31 and extra.services[0] == (6, 8001)
    assert extra.sources == []  # the same source address every time
    assert [s[6] for s in extra.samples] == [40001, 40002, 40003, 40004][: MAX_SAMPLES - 1]
    rows = [row for row, _ in sums.samples()]
    assert rows == [0] * MAX_SAMPLES
