"""Names of destinations and hosts: passive DNS, TLS SNI, QUIC SNI, HTTP Host, DHCP and mDNS names."""
