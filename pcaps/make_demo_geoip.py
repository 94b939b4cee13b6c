#!/usr/bin/env python3
"""Build the demo's GeoIP databases: country and ASN .mmdb files for the public addresses of
pcaps/demo-site.pcap (mmdb-writer, a development dependency).

    python pcaps/make_demo_geoip.py [OUT_DIR]      (default: out/demo-geoip)

The demo's public peers use RFC 5737 documentation addresses, which no real database places
anywhere, so these databases are made up for the demo, and say so in their description. The
countries tell the demo's story (a camera vendor's cloud in CN, a CDN in IE, a web host in US);
the AS numbers are RFC 5398 documentation numbers, so nobody mistakes them for real operators.
The record layout is MaxMind's (GeoLite2-Country, GeoLite2-ASN), which auditor/geo reads.

The files are built at `make demo` time, not committed: a database carries its build date, and
auditor warns when one is older than 45 days.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmdb_writer import MmdbU32, MMDBWriter
from netaddr import IPSet

DEFAULT_OUT = Path("out/demo-geoip")
DESCRIPTION = "span-auditor demo data for pcaps/demo-site.pcap: made up, not a real GeoIP database"

# network -> (ISO country, documentation AS number, organisation)
NETWORKS: dict[str, tuple[str, int, str]] = {
    "198.51.100.0/27": ("US", 64496, "Demo Web Hosting (documentation AS)"),  # www.example.com at .10
    "198.51.100.32/27": ("IE", 64497, "Demo CDN Ireland (documentation AS)"),  # litedev.ezvizlife.com at .41
    "198.51.100.64/26": ("CN", 64498, "Demo Vendor Cloud CN (documentation AS)"),  # EZVIZ peer at .77
    "203.0.113.0/24": ("CN", 64498, "Demo Vendor Cloud CN (documentation AS)"),  # Hik-Connect, easy4ip, NTP, images
}


def build(out_dir: Path) -> tuple[Path, Path]:
    """Write demo-country.mmdb and demo-asn.mmdb into out_dir; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    country = MMDBWriter(ip_version=6, database_type="GeoLite2-Country", ipv4_compatible=True,
                         description={"en": DESCRIPTION})
    asn = MMDBWriter(ip_version=6, database_type="GeoLite2-ASN", ipv4_compatible=True,
                     description={"en": DESCRIPTION})
    for cidr, (iso, number, org) in NETWORKS.items():
        country.insert_network(IPSet([cidr]), {"country": {"iso_code": iso}})
        asn.insert_network(IPSet([cidr]), {"autonomous_system_number": MmdbU32(number),
                                            "autonomous_system_organization": org})
    country_path, asn_path = out_dir / "demo-country.mmdb", out_dir / "demo-asn.mmdb"
    country.to_db_file(str(country_path))
    asn.to_db_file(str(asn_path))
    return country_path, asn_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    for path in build(args.out_dir):
        print(f"{path}: {path.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
